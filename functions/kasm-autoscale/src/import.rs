//! `kasm-autoscale import --kasm-url URL --api-key KEY [...] [--out FILE]`: reads a running Kasm's autoscale,
//! VM-provider and DNS-provider configs, server pools and schedules through its admin API and writes a
//! config file of ours (the mapping is `shared::kasm::import`). Secrets never leave Kasm: they become
//! `env:` references, listed at the end of the file and on stderr.

use std::io::Write;
use std::path::Path;

use secrecy::SecretString;
use serde_json::{Map, Value};
use shared::config::{KasmAuthMode, KasmSettings, SecretRef};
use shared::kasm::KasmClient;
use shared::kasm::client::Call;
use shared::kasm::import::{self, IMPORT_CALLS, ImportTarget, KasmAnswers};

/// What `import` was asked.
#[derive(Debug, Clone)]
pub struct Args<'a> {
    /// The manager's base URL.
    pub kasm_url: &'a str,
    /// The API key.
    pub api_key: &'a str,
    /// The environment variable holding the key's secret.
    pub api_key_secret_env: &'a str,
    /// How the key is sent.
    pub auth_mode: KasmAuthMode,
    /// Skip TLS verification of the manager.
    pub insecure: bool,
    /// Where to write the file (stdout when absent).
    pub out: Option<&'a Path>,
}

/// Runs `import`: 0 when the file was written and validates, 1 otherwise (with the reason on `err`).
pub async fn run(args: &Args<'_>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let secret = match std::env::var(args.api_key_secret_env) {
        Ok(s) if !s.is_empty() => SecretString::from(s),
        _ => {
            return fail(
                err,
                &format!(
                    "the API key's secret is read from the environment variable {}, which is not set \
                     (never pass it on the command line; choose another variable with --api-key-secret-env)",
                    args.api_key_secret_env
                ),
            );
        }
    };
    let settings = KasmSettings {
        url: args.kasm_url.to_string(),
        api_key: args.api_key.to_string(),
        api_key_secret: SecretRef::Env(args.api_key_secret_env.to_string()),
        auth_mode: args.auth_mode,
        verify_tls: !args.insecure,
        manager_token: None,
        upstream_auth_address: None,
        agent_registration: Default::default(),
    };
    let client = match KasmClient::new(&settings, secret) {
        Ok(c) => c,
        Err(e) => return fail(err, &e.to_string()),
    };
    let answers = match read_all(&client).await {
        Ok(a) => a,
        Err(e) => return fail(err, &format!("nothing imported: {}", import::explain(&e))),
    };
    let target = ImportTarget {
        url: args.kasm_url.trim_end_matches('/').to_string(),
        api_key: args.api_key.to_string(),
        api_key_secret_env: args.api_key_secret_env.to_string(),
        auth_mode: args.auth_mode,
        verify_tls: !args.insecure,
    };
    let origin = args.out.map_or_else(|| "(stdout)".to_string(), |p| p.display().to_string());
    let imported = match import::import(&answers, &target, &origin) {
        Ok(i) => i,
        Err(e) => return fail(err, &format!("nothing imported: {e}")),
    };
    match args.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &imported.yaml) {
                return fail(err, &format!("failed to write {}: {e}", path.display()));
            }
        }
        None => {
            let _ = out.write_all(imported.yaml.as_bytes());
        }
    }
    // Output errors (a closed pipe) cannot change the verdict, so they are ignored.
    let counts = import::counts(&answers);
    let _ = writeln!(
        err,
        "imported {} autoscale config(s), {} VM-provider config(s), {} DNS-provider config(s), {} schedule(s) \
         from {} ({} server pool(s) read){}",
        counts["autoscale_configs"],
        counts["vm_provider_configs"],
        counts["dns_provider_configs"],
        counts["schedules"],
        target.url,
        counts["server_pools"],
        args.out.map(|p| format!(" into {}", p.display())).unwrap_or_default()
    );
    if !imported.secret_vars.is_empty() {
        let _ = writeln!(err, "set these environment variables (Kasm never returns secrets):");
        for v in &imported.secret_vars {
            let _ = writeln!(err, "  {}  ({}.{})", v.var, v.config, v.field);
        }
    }
    if !imported.fill_in.is_empty() {
        let _ = writeln!(err, "fill in (placeholders):");
        for l in &imported.fill_in {
            let _ = writeln!(err, "  {l}");
        }
    }
    if !imported.not_imported.is_empty() {
        let _ =
            writeln!(err, "{} Kasm field(s) not imported (listed at the end of the file)", imported.not_imported.len());
    }
    if imported.problems.is_empty() {
        return 0;
    }
    for p in &imported.problems {
        let _ = writeln!(err, "{p}");
    }
    let _ = writeln!(
        err,
        "error: the imported file needs {} fix(es) before `kasm-autoscale validate` accepts it",
        imported.problems.len()
    );
    1
}

/// Every import call; `get_schedules` once per autoscale config.
async fn read_all(client: &KasmClient) -> Result<KasmAnswers, shared::kasm::KasmError> {
    let read = |call: Call, payload: Map<String, Value>| async move {
        let ic = IMPORT_CALLS.iter().find(|c| c.call == call).expect("an import call");
        let answer = client.read_call(call, payload).await?;
        import::answer_list(ic, &answer)
    };
    let autoscale_configs = read(Call::GetAutoscaleConfigs, Map::new()).await?;
    let vm_provider_configs = read(Call::GetVmProviderConfigs, Map::new()).await?;
    let dns_provider_configs = read(Call::GetDnsProviderConfigs, Map::new()).await?;
    let server_pools = read(Call::GetServerPools, Map::new()).await?;
    let mut schedules = Vec::new();
    for a in &autoscale_configs {
        let Some(id) = a.get("autoscale_config_id").and_then(Value::as_str) else { continue };
        let mut payload = Map::new();
        payload.insert("target_autoscale_config_id".into(), Value::String(id.to_string()));
        schedules.extend(read(Call::GetSchedules, payload).await?);
    }
    Ok(KasmAnswers { autoscale_configs, vm_provider_configs, dns_provider_configs, server_pools, schedules })
}

fn fail(err: &mut dyn Write, msg: &str) -> i32 {
    let _ = writeln!(err, "error: {msg}");
    1
}
