//! Staging configs declared in a config file: pre-warmed sessions an autoscale config must have room for.
//!
//! With a real Kasm manager the staging configs are read from Kasm at every evaluation
//! (`admin/get_staging_configs`, see `kasm::client`); a config file declares them where no Kasm has them
//! (the simulator, tests) or for a staging need Kasm does not know. Both count (see the README, "How it
//! decides"); an entry for the same zone and image as one Kasm lists is Kasm's (Kasm allows one staging
//! config per zone and image).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kasm_names::{Accept, KasmColumn, KasmColumns, Target, no_field, own_id_kept, reference, same};

/// One staging config, with Kasm's fields (`staging_configs` table) and the size of the image it stages
/// (which Kasm keeps on the image).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StagingConfig {
    /// The autoscale config (by `autoscale_config_name`) whose VMs hold the staged sessions; Kasm counts a
    /// staging config toward the autoscale config it names (Kasm: `autoscale_config_id`).
    pub autoscale_config: String,
    /// Kasm's id of the staging config; the staged sessions Kasm (or the simulator) makes name it in their
    /// `staging_config_id`, which is how they are counted. Absent: `<autoscale_config>/<image_id>`.
    #[serde(default)]
    pub staging_config_id: Option<String>,
    /// The image (workspace) staged, Kasm's `image_id`.
    pub image_id: String,
    /// "Desired Sessions": how many staged sessions Kasm keeps ready (Kasm's `num_sessions`).
    pub num_sessions: u32,
    /// Ours: the cores one session of the image takes (Kasm keeps it on the image: `images.cores`).
    #[serde(default)]
    pub image_cores: f64,
    /// Ours: the memory (MB, 10^6 bytes) one session of the image takes (Kasm: `images.memory_bytes`).
    #[serde(default)]
    pub image_memory_mb: f64,
    /// Ours: the GPUs one session of the image takes (Kasm: `images.gpu_count`).
    #[serde(default)]
    pub image_gpus: f64,
    /// The deployment zone (Kasm's `zone_id`); absent = the autoscale config's.
    #[serde(default)]
    pub zone_id: Option<String>,
    /// The server pool (Kasm's `server_pool_id`); informational, the autoscale config decides the pool.
    #[serde(default)]
    pub server_pool_id: Option<String>,
}

const SESSION_SETTING: &str = "a setting of the sessions Kasm stages; it does not change the capacity they need";

/// Kasm's `staging_configs` columns: the autoscale config is named by Kasm id (resolved by the ids the
/// autoscale configs of the same file carry).
impl KasmColumns for StagingConfig {
    const KASM_TABLE: &'static str = "staging_configs";
    const KASM_COLUMNS: &'static [KasmColumn] = &[
        own_id_kept("staging_config_id"),
        reference("autoscale_config_id", "autoscale_config", Target::Autoscale),
        same("image_id"),
        same("num_sessions"),
        same("zone_id"),
        same("server_pool_id"),
        no_field(
            "expiration",
            "Kasm's staging service replaces staged sessions after it; the capacity they need is the same",
            Accept::Any,
        ),
        no_field("allow_kasm_audio", SESSION_SETTING, Accept::Any),
        no_field("allow_kasm_clipboard_down", SESSION_SETTING, Accept::Any),
        no_field("allow_kasm_clipboard_up", SESSION_SETTING, Accept::Any),
        no_field("allow_kasm_downloads", SESSION_SETTING, Accept::Any),
        no_field("allow_kasm_gamepad", SESSION_SETTING, Accept::Any),
        no_field("allow_kasm_microphone", SESSION_SETTING, Accept::Any),
        no_field("allow_kasm_printing", SESSION_SETTING, Accept::Any),
        no_field("allow_kasm_rdp_client_file_transfer_clipboard", SESSION_SETTING, Accept::Any),
        no_field("allow_kasm_uploads", SESSION_SETTING, Accept::Any),
        no_field("allow_kasm_webcam", SESSION_SETTING, Accept::Any),
    ];
}

impl StagingConfig {
    /// Kasm's id of the staging config, or `<autoscale_config>/<image_id>` when the file gives none.
    pub fn id(&self) -> String {
        self.staging_config_id.clone().unwrap_or_else(|| format!("{}/{}", self.autoscale_config, self.image_id))
    }

    /// What one staged session takes.
    pub fn image_size(&self) -> crate::model::Resources {
        crate::model::Resources::new(self.image_cores, self.image_memory_mb, self.image_gpus)
    }

    /// Problems of the entry on its own, as `(field, message)`.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut f = Vec::new();
        if self.image_id.trim().is_empty() {
            f.push(("image_id".into(), "must name the image staged".into()));
        }
        for (field, v) in [
            ("image_cores", self.image_cores),
            ("image_memory_mb", self.image_memory_mb),
            ("image_gpus", self.image_gpus),
        ] {
            if !v.is_finite() || v < 0.0 {
                f.push((field.into(), format!("must be a number ≥ 0, got {v}")));
            }
        }
        f
    }
}
