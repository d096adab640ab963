//! The config model: Kasm's autoscale, VM-provider and DNS-provider configs and schedules, with
//! Kasm's field names; loading from YAML or JSON; validation; JSON Schema.

pub mod autoscale;
pub mod check;
pub mod did_you_mean;
pub mod dns;
pub mod json_text;
pub mod kasm_names;
pub mod provider;
pub mod providers;
pub mod schedule;
pub mod secret;
pub mod settings;
pub mod staging;
pub mod validate;

pub use autoscale::{AutoscaleConfig, AutoscaleType, ConnectionType, PredictiveScaling};
pub use dns::{AzureDnsConfig, DigitalOceanDnsConfig, DnsProviderConfig, GcpDnsConfig, OciDnsConfig, Route53DnsConfig};
pub use json_text::{JsonText, YamlText};
pub use provider::{Endpoint, ProviderConfigCommon, ProviderKind, VmProviderConfig};
pub use schedule::{Schedule, Weekday};
pub use secret::SecretRef;
pub use settings::{KasmAuthMode, KasmSettings, Settings};
pub use staging::StagingConfig;
pub use validate::{Problem, schema, validate_files, validate_set, validate_sources, validate_text};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One config file: any of the lists, plus deployment settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Deployment-wide settings (timers, Kasm connection).
    #[serde(default)]
    pub settings: Option<Settings>,
    /// Autoscale configs.
    #[serde(default)]
    pub autoscale_configs: Vec<AutoscaleConfig>,
    /// VM-provider configs.
    #[serde(default)]
    pub vm_provider_configs: Vec<VmProviderConfig>,
    /// DNS-provider configs.
    #[serde(default)]
    pub dns_provider_configs: Vec<DnsProviderConfig>,
    /// Schedules.
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    /// Staging configs (pre-warmed sessions; Kasm's own are read from Kasm too).
    #[serde(default)]
    pub staging_configs: Vec<StagingConfig>,
}

/// Everything one deployment runs on: the union of its config files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigSet {
    /// Deployment-wide settings.
    pub settings: Settings,
    /// Autoscale configs.
    pub autoscale_configs: Vec<AutoscaleConfig>,
    /// VM-provider configs.
    pub vm_provider_configs: Vec<VmProviderConfig>,
    /// DNS-provider configs.
    pub dns_provider_configs: Vec<DnsProviderConfig>,
    /// Schedules.
    pub schedules: Vec<Schedule>,
    /// Staging configs declared in the files (absent in sets stored before they existed).
    #[serde(default)]
    pub staging_configs: Vec<StagingConfig>,
}

impl ConfigSet {
    /// The autoscale config named `name`.
    pub fn autoscale(&self, name: &str) -> Option<&AutoscaleConfig> {
        self.autoscale_configs.iter().find(|c| c.autoscale_config_name == name)
    }

    /// The VM-provider config named `name`.
    pub fn provider(&self, name: &str) -> Option<&VmProviderConfig> {
        self.vm_provider_configs.iter().find(|c| c.name() == name)
    }

    /// The schedules attached to autoscale config `name`.
    pub fn schedules_of(&self, name: &str) -> Vec<Schedule> {
        self.schedules.iter().filter(|s| s.autoscale_config == name).cloned().collect()
    }

    /// The staging configs the files declare for autoscale config `name`.
    pub fn staging_of(&self, name: &str) -> Vec<StagingConfig> {
        self.staging_configs.iter().filter(|s| s.autoscale_config == name).cloned().collect()
    }

    /// Adds a file's configs to the set.
    pub fn merge(&mut self, f: ConfigFile) {
        if let Some(s) = f.settings {
            self.settings = s;
        }
        self.autoscale_configs.extend(f.autoscale_configs);
        self.vm_provider_configs.extend(f.vm_provider_configs);
        self.dns_provider_configs.extend(f.dns_provider_configs);
        self.schedules.extend(f.schedules);
        self.staging_configs.extend(f.staging_configs);
    }
}

/// Why a config file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: failed to read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid config (type or syntax error); `message` names the field.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// Validation found problems (every one of them, each naming its file, config and field).
    #[error("{} problem(s) in the configs:\n{}", problems.len(), problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The problems.
        problems: Vec<Problem>,
    },
}

/// Parses one config document (YAML, of which JSON is a subset) without the semantic checks; stops at the
/// first error. `origin` names it in errors. [`validate_text`] reports every problem instead.
/// Kasm's own field names ([`kasm_names`]) are taken as validation takes them.
pub fn parse_config(text: &str, origin: &str) -> Result<ConfigFile, ConfigError> {
    let parse_error = |message: String| ConfigError::Parse { path: origin.to_string(), message };
    crate::input::check_nesting(text, crate::input::MAX_NESTING).map_err(|e| parse_error(e.to_string()))?;
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| parse_error(e.to_string()))?;
    doc.apply_merge().map_err(|e| parse_error(e.to_string()))?;
    if let Some(p) = validate::kasm_names_to_ours(&mut doc, origin).into_iter().next() {
        return Err(parse_error(format!("{}: {}", p.field.unwrap_or_default(), p.message)));
    }
    serde_yaml_ng::from_value::<ConfigFile>(doc).map_err(|e| parse_error(e.to_string()))
}

/// Reads and parses one config file.
pub fn load_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = crate::input::read_text(path, crate::input::MAX_CONFIG_BYTES).map_err(|e| match e {
        crate::input::InputError::Read(source) => ConfigError::Read { path: path.display().to_string(), source },
        other => ConfigError::Parse { path: path.display().to_string(), message: other.to_string() },
    })?;
    parse_config(&text, &path.display().to_string())
}

/// Reads several files into one set, validated: any problem (in any file) is an error listing them all.
pub fn load_files(paths: &[impl AsRef<Path>]) -> Result<ConfigSet, ConfigError> {
    let paths: Vec<std::path::PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
    let (set, problems) = validate_files(&paths);
    if problems.is_empty() { Ok(set) } else { Err(ConfigError::Invalid { problems }) }
}
