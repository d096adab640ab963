#!/usr/bin/env python3
"""Extracts the vim25 (vSphere Web Services, SOAP) subset kasm-autoscale's vSphere provider uses
from VMware's official Python SDK, pyvmomi, into tests/vsphere/vim25-subset.json.

Usage: python3 scripts/vim25-subset.py [PYVMOMI_GIT_DIR] [COMMIT] > tests/vsphere/vim25-subset.json
(default: /work/.mirror/vmware+pyvmomi/repo at HEAD; the directory may be a bare git dir).

Only facts are taken, never code: pyvmomi's generated type tables `pyVmomi/_typeinfo_core.py`,
`_typeinfo_query.py` and `_typeinfo_vim.py` are read as Python syntax (`ast`, never executed), each
`CreateDataType` / `CreateManagedType` / `CreateEnumType` / `AddVersion` / `AddVersionParent` call's
literal arguments recorded. Three base types are not in those tables but in `VmomiSupport.py`
(`vmodl.MethodFault`: msg, faultCause, faultMessage; `vmodl.RuntimeFault`; `vmodl.LocalizedMethodFault`:
fault, localizedMessage): they are written below as constants, and the script checks that
`VmomiSupport.py` still declares them so.

Output (JSON): the WSDL namespace, the API version we send (SOAPAction), and for each method we call
its `_this` type and parameters in order (WSDL names, optional flags, the privilege each parameter's
object needs) and the privilege the method itself needs (pyvmomi's method tuples); for each data object type its
fields in WSDL order (inherited fields first), each with its type and optional flag, fields newer than
our API version left out; the enum values; the fault types whose class our client maps (with every
subtype, so a server may answer a subtype).
Python 3 standard library only.
"""

import ast
import json
import subprocess
import sys

REPO = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/vmware+pyvmomi/repo"
COMMIT = sys.argv[2] if len(sys.argv) > 2 else "HEAD"
FILES = ["pyVmomi/_typeinfo_core.py", "pyVmomi/_typeinfo_query.py", "pyVmomi/_typeinfo_vim.py"]

# The API version we speak: vCenter 7.0 U2, the provider's minimum (README).
VERSION = "vim.version.v7_0_2_0"

# (managed type, method WSDL name) we call.
METHODS = [
    ("ServiceInstance", "RetrieveServiceContent"),
    ("SessionManager", "Login"),
    ("SessionManager", "Logout"),
    ("PropertyCollector", "RetrievePropertiesEx"),
    ("SearchIndex", "FindChild"),
    ("VirtualMachine", "CloneVM_Task"),
    ("StorageResourceManager", "RecommendDatastores"),
    ("StorageResourceManager", "ApplyStorageDrsRecommendation_Task"),
    ("AuthorizationManager", "HasPrivilegeOnEntities"),
]
# (managed type, property) we read with RetrievePropertiesEx.
PROPERTIES = [
    ("ManagedEntity", "name"),
    ("ManagedEntity", "parent"),
    ("VirtualMachine", "snapshot"),
    ("VirtualMachine", "resourcePool"),
    ("ClusterComputeResource", "resourcePool"),
    ("Datacenter", "datastoreFolder"),
    ("Task", "info"),
    ("SessionManager", "currentSession"),
]
# Data object types we send or read (WSDL names).
TYPES = [
    "ServiceContent", "UserSession", "PropertyFilterSpec", "PropertySpec", "ObjectSpec", "RetrieveOptions",
    "RetrieveResult", "ObjectContent", "DynamicProperty", "MissingProperty", "VirtualMachineSnapshotInfo",
    "VirtualMachineSnapshotTree", "VirtualMachineCloneSpec", "VirtualMachineRelocateSpec", "TaskInfo",
    "LocalizedMethodFault", "MethodFault", "StoragePlacementSpec", "StorageDrsPodSelectionSpec",
    "StoragePlacementResult", "ClusterRecommendation", "ApplyStorageRecommendationResult",
    "ManagedObjectNotFound", "InvalidLogin", "NotAuthenticated", "NoPermission", "InsufficientResourcesFault",
    "NoDiskSpace", "InvalidArgument", "EntityPrivilege", "PrivilegeAvailability",
]
ENUMS = ["VirtualMachineRelocateDiskMoveOptions", "TaskInfoState", "StoragePlacementSpecPlacementType",
         "VirtualMachinePowerState"]
# Faults the client classifies; every subtype is listed with them.
FAULT_ROOTS = ["InsufficientResourcesFault", "NoDiskSpace", "NotAuthenticated", "NoPermission", "InvalidLogin",
               "ManagedObjectNotFound"]

F_LINK, F_LINKABLE, F_OPTIONAL, F_SECRET = [1 << x for x in range(4)]  # pyVmomi/VmomiSupport.py
FLAGS = {"F_LINK": F_LINK, "F_LINKABLE": F_LINKABLE, "F_OPTIONAL": F_OPTIONAL, "F_SECRET": F_SECRET}
BASE = "vmodl.version.version0"
# From pyVmomi/VmomiSupport.py (CreateAndLoadMethodFaultType and its neighbours), not the tables.
BUILTIN = {
    "vmodl.MethodFault": ("MethodFault", "vmodl.DynamicData", BASE, [
        ("msg", "string", BASE, F_OPTIONAL),
        ("faultCause", "vmodl.MethodFault", "vmodl.version.version1", F_OPTIONAL),
        ("faultMessage", "vmodl.LocalizableMessage[]", "vmodl.version.version1", F_OPTIONAL)]),
    "vmodl.RuntimeFault": ("RuntimeFault", "vmodl.MethodFault", BASE, []),
    "vmodl.LocalizedMethodFault": ("LocalizedMethodFault", "vmodl.MethodFault", BASE, [
        ("fault", "vmodl.MethodFault", BASE, 0),
        ("localizedMessage", "string", BASE, F_OPTIONAL)]),
}
PRIMITIVES = {
    "string": "string", "boolean": "boolean", "int": "int", "long": "long", "short": "short", "byte": "byte",
    "double": "double", "float": "float", "anyType": "anyType", "vmodl.DateTime": "dateTime",
    "vmodl.PropertyPath": "string", "vmodl.TypeName": "string", "vmodl.MethodName": "string", "vmodl.URI": "anyURI",
    "vmodl.Binary": "base64Binary", "vmodl.ManagedObject": "ManagedObjectReference", "void": "void",
}


def show(path):
    return subprocess.run(["git", "-C", REPO, "show", f"{COMMIT}:{path}"], check=True, capture_output=True,
                          text=True).stdout


def value(node):
    """A literal argument; the F_* flag names and their `|` combinations as numbers."""
    if isinstance(node, ast.Name):
        return FLAGS[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return value(node.left) | value(node.right)
    if isinstance(node, (ast.Tuple, ast.List)):
        return [value(e) for e in node.elts]
    return ast.literal_eval(node)


data, managed, enums, versions, parents = {}, {}, {}, {}, {}
for f in FILES:
    for stmt in ast.parse(show(f)).body:
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Name)):
            continue
        name, args = stmt.value.func.id, [value(a) for a in stmt.value.args]
        if name == "CreateDataType":
            data[args[0]] = (args[1], args[2], args[3], args[4] or [])
        elif name == "CreateManagedType":
            managed[args[0]] = {"wsdl": args[1], "base": args[2], "props": args[4] or [], "methods": args[5] or []}
        elif name == "CreateEnumType":
            enums[args[0]] = (args[1], args[3])
        elif name == "AddVersion":
            versions[args[0]] = {"ns": args[1] or args[4], "id": args[2], "service_ns": args[4]}
        elif name == "AddVersionParent":
            parents.setdefault(args[0], set()).add(args[1])

support = show("pyVmomi/VmomiSupport.py")
for needle in ['"msg", "string", BASE_VERSION, F_OPTIONAL', '"faultCause", "vmodl.MethodFault"',
               '"faultMessage", "vmodl.LocalizableMessage[]"', '("fault", "vmodl.MethodFault", BASE_VERSION, 0)',
               '("localizedMessage", "string", BASE_VERSION, F_OPTIONAL)',
               '(F_LINK, F_LINKABLE, F_OPTIONAL, F_SECRET) = [1 << x for x in range(4)]']:
    assert needle in support, f"VmomiSupport.py no longer says {needle}"
data.update(BUILTIN)
data.setdefault("vmodl.DataObject", ("DataObject", None, BASE, []))

known = parents[VERSION]
by_wsdl = {v[0]: k for k, v in data.items()}
managed_by_wsdl = {v["wsdl"]: k for k, v in managed.items()}
enum_by_wsdl = {v[0]: k for k, v in enums.items()}


def known_in(version):
    # The vmodl base versions are parents of every vim version.
    return version in known or version.startswith("vmodl.version.")


def wire_type(t):
    arr = t.endswith("[]")
    base = t[:-2] if arr else t
    if base in PRIMITIVES:
        w = PRIMITIVES[base]
    elif base in managed:
        w = "ManagedObjectReference:" + managed[base]["wsdl"]
    elif base in data:
        w = data[base][0]
    elif base in enums:
        w = "enum:" + enums[base][0]
    else:
        raise SystemExit(f"unknown type {t}")
    return w + ("[]" if arr else "")


def fields(vmodl):
    wsdl, parent, _, props = data[vmodl]
    out = fields(parent) if parent and parent in data else []
    for p in props:
        if known_in(p[2]):
            out.append({"name": p[0], "type": wire_type(p[1]), "optional": bool(p[3] & F_OPTIONAL)})
    return out


def ancestors(vmodl):
    out = []
    while vmodl in data and data[vmodl][1]:
        vmodl = data[vmodl][1]
        out.append(data[vmodl][0])
    return out


def managed_chain(vmodl):
    out = [vmodl]
    while managed[out[-1]]["base"] in managed:
        out.append(managed[out[-1]]["base"])
    return out


out = {
    "SOURCE": (f"Extracted by scripts/vim25-subset.py from VMware's pyvmomi (github.com/vmware/pyvmomi, Apache-2.0) "
               f"commit {subprocess.run(['git', '-C', REPO, 'rev-parse', COMMIT], capture_output=True, text=True).stdout.strip()}: "
               "pyVmomi/_typeinfo_core.py, _typeinfo_query.py, _typeinfo_vim.py (the generated type tables: managed methods "
               "with their parameters in order, data types with their fields in WSDL order, enums, versions) and "
               "pyVmomi/VmomiSupport.py (MethodFault, RuntimeFault, LocalizedMethodFault, the F_* flags). Facts only; "
               "field lists include inherited fields first and leave out fields newer than `version`."),
    "wsdl_namespace": "urn:" + versions[VERSION]["service_ns"],
    "version": {"name": VERSION, "namespace": versions[VERSION]["ns"], "id": versions[VERSION]["id"],
                # pyVmomi/SoapAdapter.py ComputeVersionInfo: '"urn:{ns}/{versionId}"', quotes included.
                "soap_action": '"urn:{}/{}"'.format(versions[VERSION]["ns"], versions[VERSION]["id"])},
    "methods": {}, "properties": {}, "types": {}, "enums": {}, "faults": {},
}
for mtype, wsdl in METHODS:
    vm = managed_by_wsdl[mtype]
    found = None
    for chain in managed_chain(vm):
        for m in managed[chain]["methods"]:
            if m[1] == wsdl:
                found = m
    assert found, f"{mtype}.{wsdl} not found"
    assert known_in(found[2]), f"{wsdl} is newer than {VERSION}"
    # The privilege each parameter's object needs, and the method's own (pyvmomi's tuples; None: none listed).
    params = [{"name": p[0], "type": wire_type(p[1]), "optional": bool(p[3] & F_OPTIONAL),
               "secret": bool(p[3] & F_SECRET), "privilege": p[4]} for p in found[3] if known_in(p[2])]
    out["methods"][wsdl] = {"this": mtype, "params": params, "result": wire_type(found[4][2]),
                            "result_optional": bool(found[4][0] & F_OPTIONAL), "since": versions[found[2]]["id"],
                            "privilege": found[5]}
for mtype, prop in PROPERTIES:
    vm = managed_by_wsdl[mtype]
    p = next(p for c in managed_chain(vm) for p in managed[c]["props"] if p[0] == prop)
    assert known_in(p[2])
    out["properties"][f"{mtype}.{prop}"] = {"type": wire_type(p[1]), "optional": bool(p[3] & F_OPTIONAL)}
for t in TYPES:
    v = by_wsdl[t]
    out["types"][t] = {"base": data[data[v][1]][0] if data[v][1] in data else None, "ancestors": ancestors(v),
                       "fields": fields(v)}
for e in ENUMS:
    v = enum_by_wsdl[e]
    out["enums"][e] = list(enums[v][1])
for root in FAULT_ROOTS:
    out["faults"][root] = sorted(data[k][0] for k in data if data[k][0] == root or root in ancestors(k))
# Managed types whose morefs we name, with their ancestors (a `_this` of a subtype is fine).
out["managed"] = {managed[k]["wsdl"]: [managed[c]["wsdl"] for c in managed_chain(k)]
                  for k in managed if managed[k]["wsdl"] in {
                      "ServiceInstance", "SessionManager", "PropertyCollector", "SearchIndex", "VirtualMachine",
                      "StorageResourceManager", "AuthorizationManager", "Task", "Folder", "ResourcePool", "Datastore", "StoragePod",
                      "Datacenter", "ClusterComputeResource", "HostSystem", "VirtualMachineSnapshot"}}
json.dump(out, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
