//! Sizes of common instance types, for providers whose config names a type instead of cores/memory. Used to
//! count a still-booting VM; an unknown type gives `None` (the autoscale config's overrides then apply).
//! Only what the name states or the provider publishes for widely used families is here; no guesses.

use crate::model::Resources;

fn gib(cores: f64, memory_gib: f64, gpus: f64) -> Resources {
    Resources::new(cores, memory_gib * 1024.0, gpus)
}

/// AWS EC2 instance types of common families (vCPUs, memory GiB, GPUs as AWS publishes them).
pub(crate) fn aws(instance_type: &str) -> Option<Resources> {
    let (family, size) = instance_type.split_once('.')?;
    // vCPUs by size for the "large = 2 vCPUs" families; memory per vCPU by family.
    let vcpus: f64 = match size {
        "large" => 2.0,
        "xlarge" => 4.0,
        "2xlarge" => 8.0,
        "4xlarge" => 16.0,
        "8xlarge" => 32.0,
        "12xlarge" => 48.0,
        "16xlarge" => 64.0,
        _ => 0.0,
    };
    match family {
        "t3" | "t3a" => {
            let (c, m) = match size {
                "nano" => (2.0, 0.5),
                "micro" => (2.0, 1.0),
                "small" => (2.0, 2.0),
                "medium" => (2.0, 4.0),
                "large" => (2.0, 8.0),
                "xlarge" => (4.0, 16.0),
                "2xlarge" => (8.0, 32.0),
                _ => return None,
            };
            Some(gib(c, m, 0.0))
        }
        "m5" | "m5a" | "m6i" | "m6a" | "m7i" | "m7a" if vcpus > 0.0 => Some(gib(vcpus, vcpus * 4.0, 0.0)),
        "c5" | "c5a" | "c6i" | "c6a" | "c7i" | "c7a" if vcpus > 0.0 => Some(gib(vcpus, vcpus * 2.0, 0.0)),
        "r5" | "r5a" | "r6i" | "r6a" | "r7i" if vcpus > 0.0 => Some(gib(vcpus, vcpus * 8.0, 0.0)),
        "g4dn" => match size {
            "xlarge" => Some(gib(4.0, 16.0, 1.0)),
            "2xlarge" => Some(gib(8.0, 32.0, 1.0)),
            "4xlarge" => Some(gib(16.0, 64.0, 1.0)),
            "8xlarge" => Some(gib(32.0, 128.0, 1.0)),
            _ => None,
        },
        _ => None,
    }
}

/// Azure sizes of the B, Dv3+/Ev3+ and Fsv2 series.
pub(crate) fn azure(vm_size: &str) -> Option<Resources> {
    let rest = vm_size.strip_prefix("Standard_")?;
    let b = match rest {
        "B1s" => Some((1.0, 1.0)),
        "B1ms" => Some((1.0, 2.0)),
        "B2s" => Some((2.0, 4.0)),
        "B2ms" => Some((2.0, 8.0)),
        "B4ms" => Some((4.0, 16.0)),
        "B8ms" => Some((8.0, 32.0)),
        _ => None,
    };
    if let Some((c, m)) = b {
        return Some(gib(c, m, 0.0));
    }
    let family = rest.chars().next()?;
    let digits: String = rest[1..].chars().take_while(char::is_ascii_digit).collect();
    let n: f64 = digits.parse().ok()?;
    let suffix = &rest[1 + digits.len()..];
    let (modifiers, version) = suffix.split_once("_v")?;
    // Only the plain/a/d/s variants: other letters (e.g. constrained-core sizes) change the counts.
    if !modifiers.chars().all(|c| matches!(c, 'a' | 'd' | 's')) {
        return None;
    }
    let version: u32 = version.parse().ok()?;
    match (family, version) {
        ('D', 3..=5) => Some(gib(n, n * 4.0, 0.0)),
        ('E', 3..=5) => Some(gib(n, n * 8.0, 0.0)),
        ('F', 2) if modifiers.contains('s') => Some(gib(n, n * 2.0, 0.0)),
        _ => None,
    }
}

/// DigitalOcean size slugs state their size: `s-2vcpu-4gb`, `g-4vcpu-16gb`, `s-1vcpu-512mb-10gb`; CPU-optimized
/// `c-N` has N vCPUs and 2 GB per vCPU.
pub(crate) fn digital_ocean(slug: &str) -> Option<Resources> {
    let parts: Vec<&str> = slug.split('-').collect();
    if parts.len() == 2 && (parts[0] == "c" || parts[0] == "c2") {
        let n: f64 = parts[1].parse().ok()?;
        return Some(gib(n, n * 2.0, 0.0));
    }
    let i = parts.iter().position(|p| p.ends_with("vcpu"))?;
    let cores: f64 = parts[i].strip_suffix("vcpu")?.parse().ok()?;
    let mem = parts.get(i + 1)?;
    let memory_gib = if let Some(gb) = mem.strip_suffix("gb") {
        gb.parse::<f64>().ok()?
    } else {
        mem.strip_suffix("mb")?.parse::<f64>().ok()? / 1024.0
    };
    Some(gib(cores, memory_gib, 0.0))
}

/// GCP predefined (`e2-standard-4`, `n1-highmem-8`, `e2-medium`) and custom (`n2-custom-4-8192`,
/// `custom-2-4096`) machine types. GPUs come from the guest accelerators, not the type.
pub(crate) fn gcp(machine_type: &str) -> Option<Resources> {
    let parts: Vec<&str> = machine_type.split('-').collect();
    match parts.as_slice() {
        ["e2", "micro"] => Some(gib(2.0, 1.0, 0.0)),
        ["e2", "small"] => Some(gib(2.0, 2.0, 0.0)),
        ["e2", "medium"] => Some(gib(2.0, 4.0, 0.0)),
        ["custom", cpus, mb] | [_, "custom", cpus, mb] => {
            Some(Resources::new(cpus.parse().ok()?, mb.parse().ok()?, 0.0))
        }
        [family, class, n] => {
            let n: f64 = n.parse().ok()?;
            let per_core = match (*family, *class) {
                ("n1", "standard") => 3.75,
                ("n1", "highmem") => 6.5,
                ("n1", "highcpu") => 0.9,
                ("e2" | "n2" | "n2d" | "c2" | "c2d" | "c3" | "n4" | "t2d", "standard") => 4.0,
                ("e2" | "n2" | "n2d" | "c2d" | "c3" | "n4", "highmem") => 8.0,
                ("e2" | "n2" | "n2d", "highcpu") => 1.0,
                ("c2d" | "c3" | "n4", "highcpu") => 2.0,
                _ => return None,
            };
            Some(gib(n, n * per_core, 0.0))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_have_published_sizes() {
        assert_eq!(aws("t3.medium"), Some(Resources::new(2.0, 4096.0, 0.0)));
        assert_eq!(aws("m5.2xlarge"), Some(Resources::new(8.0, 32768.0, 0.0)));
        assert_eq!(aws("g4dn.xlarge"), Some(Resources::new(4.0, 16384.0, 1.0)));
        assert_eq!(azure("Standard_D2s_v3"), Some(Resources::new(2.0, 8192.0, 0.0)));
        assert_eq!(azure("Standard_E4as_v5"), Some(Resources::new(4.0, 32768.0, 0.0)));
        assert_eq!(azure("Standard_B2ms"), Some(Resources::new(2.0, 8192.0, 0.0)));
        assert_eq!(digital_ocean("s-2vcpu-4gb"), Some(Resources::new(2.0, 4096.0, 0.0)));
        assert_eq!(digital_ocean("s-1vcpu-512mb-10gb"), Some(Resources::new(1.0, 512.0, 0.0)));
        assert_eq!(digital_ocean("c-4"), Some(Resources::new(4.0, 8192.0, 0.0)));
        assert_eq!(gcp("e2-standard-2"), Some(Resources::new(2.0, 8192.0, 0.0)));
        assert_eq!(gcp("n1-standard-1"), Some(Resources::new(1.0, 3840.0, 0.0)));
        assert_eq!(gcp("n2-custom-4-8192"), Some(Resources::new(4.0, 8192.0, 0.0)));
    }

    #[test]
    fn unknown_types_are_none_not_guessed() {
        for t in ["x9.large", "t3.huge", "m5", ""] {
            assert_eq!(aws(t), None, "{t}");
        }
        for t in ["Standard_D2_v2", "Standard_D4ls_v5", "Standard_NC6", "D2s_v3"] {
            assert_eq!(azure(t), None, "{t}");
        }
        assert_eq!(digital_ocean("gpu-h100x1-80gb"), None);
        assert_eq!(gcp("a2-highgpu-1g"), None);
        assert_eq!(gcp("m1-ultramem-40"), None);
    }
}
