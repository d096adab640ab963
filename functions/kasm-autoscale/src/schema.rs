//! `kasm-autoscale schema`: the JSON Schema of config files, for editors (e.g. yaml-language-server).

use std::io::Write;

/// Prints the JSON Schema; returns 0, or 1 when it cannot be written.
pub fn run(out: &mut dyn Write) -> i32 {
    let schema = shared::config::schema();
    match serde_json::to_writer_pretty(&mut *out, &schema).and_then(|()| writeln!(out).map_err(serde_json::Error::io)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("failed to write the schema: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prints_the_config_file_schema() {
        let mut out = Vec::new();
        assert_eq!(super::run(&mut out), 0);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["properties"]["vm_provider_configs"].is_object(), "{v}");
    }
}
