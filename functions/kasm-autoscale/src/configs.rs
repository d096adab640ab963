//! Loading configs for the commands that act: validated first, so bad input changes nothing.

use std::io::Write;
use std::path::PathBuf;

use shared::config::ConfigSet;
use shared::ports::Store;

/// Configs from files (validated; every problem printed, exit 1), else from the store.
pub async fn from_files_or_store(files: &[PathBuf], store: &dyn Store, err: &mut dyn Write) -> Result<ConfigSet, i32> {
    if !files.is_empty() {
        let (set, problems) = shared::config::validate::validate_files(files);
        if !problems.is_empty() {
            for p in &problems {
                let _ = writeln!(err, "{p}");
            }
            let _ = writeln!(err, "error: {} problem(s); nothing done", problems.len());
            return Err(1);
        }
        return Ok(set);
    }
    match store.load_configs().await {
        Ok(Some(set)) => Ok(set),
        Ok(None) => {
            let _ = writeln!(err, "error: no --config given and the store holds no configs");
            Err(1)
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            Err(1)
        }
    }
}
