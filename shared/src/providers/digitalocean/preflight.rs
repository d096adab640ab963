//! `kasm-autoscale preflight` for DigitalOcean: every check an operator would otherwise discover
//! from a failed provisioning — the token, droplet-limit headroom, the region/size/image together,
//! the SSH key and firewall names, the tags and the startup script's size — read-only, one result
//! per check.

use super::{DigitalOceanProvider, USER_DATA_MAX, tags};
use crate::config::ProviderConfigCommon;
use crate::model::OsFamily;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 9] =
    ["credentials", "droplet_limit", "region", "size", "image", "ssh_key", "firewall", "tags", "startup_script"];

impl DigitalOceanProvider {
    /// Runs every check of [`CHECKS`], read-only. A token the API refuses fails `credentials` and
    /// leaves the API checks not checked.
    pub async fn preflight(&self) -> Vec<Check> {
        let mut out = Vec::with_capacity(CHECKS.len());
        let account = match self.client.account().await {
            Ok(a) if a.status == "locked" => {
                out.push(Check::fail("credentials", format!("the account is locked: {}", a.status_message)));
                None
            }
            Ok(a) => {
                out.push(Check::pass("credentials", format!("token accepted (GET /v2/account); account {}", a.status)));
                Some(a)
            }
            Err(e) => {
                out.push(Check::fail("credentials", e.into_provider().to_string()));
                None
            }
        };
        let Some(account) = account else {
            out.extend(
                CHECKS[1..CHECKS.len() - 2].iter().map(|n| Check::fail(n, "not checked: the API could not be used")),
            );
            out.push(self.check_tags());
            out.push(self.check_script());
            return out;
        };
        let c = &self.config;
        out.push(match self.client.droplet_count().await {
            Ok(n) if n < account.droplet_limit => Check::pass(
                "droplet_limit",
                format!("{n} of {} droplets in use; room for {}", account.droplet_limit, account.droplet_limit - n),
            ),
            Ok(n) => Check::fail(
                "droplet_limit",
                format!(
                    "{n} droplets already use the account's limit of {}; ask DigitalOcean to raise it",
                    account.droplet_limit
                ),
            ),
            Err(e) => Check::fail("droplet_limit", e.into_provider().to_string()),
        });
        out.push(match self.client.regions().await {
            Ok(rs) => match rs.iter().find(|r| r.slug == c.region) {
                None => Check::fail("region", format!("region `{}` does not exist", c.region)),
                Some(r) if !r.available => {
                    Check::fail("region", format!("region `{}` takes no new droplets", c.region))
                }
                Some(r) if !r.sizes.contains(&c.droplet_size) => {
                    Check::fail("region", format!("region `{}` does not offer size `{}`", c.region, c.droplet_size))
                }
                Some(_) => {
                    Check::pass("region", format!("`{}` is available and offers `{}`", c.region, c.droplet_size))
                }
            },
            Err(e) => Check::fail("region", e.into_provider().to_string()),
        });
        out.push(match self.client.sizes().await {
            Ok(ss) => match ss.iter().find(|s| s.slug == c.droplet_size) {
                None => Check::fail("size", format!("droplet_size `{}` does not exist", c.droplet_size)),
                Some(s) if !s.available || !s.regions.contains(&c.region) => Check::fail(
                    "size",
                    format!("droplet_size `{}` is not available in region `{}`", c.droplet_size, c.region),
                ),
                Some(_) => Check::pass("size", format!("`{}` is available in `{}`", c.droplet_size, c.region)),
            },
            Err(e) => Check::fail("size", e.into_provider().to_string()),
        });
        out.push(match self.client.image(c.image.trim()).await {
            Ok(i) if !i.regions.is_empty() && !i.regions.contains(&c.region) => Check::fail(
                "image",
                format!("image `{}` is not available in region `{}` (it is in {:?})", c.image, c.region, i.regions),
            ),
            Ok(i) => Check::pass(
                "image",
                format!(
                    "`{}` (id {}, {}) is available in `{}`",
                    c.image,
                    i.id,
                    i.distribution.unwrap_or_default(),
                    c.region
                ),
            ),
            Err(e) if e.status() == Some(404) => Check::fail("image", format!("image `{}` does not exist", c.image)),
            Err(e) => Check::fail("image", e.into_provider().to_string()),
        });
        out.push(match self.ssh_key_ids().await {
            Ok(ids) if ids.is_empty() => Check::pass("ssh_key", "none configured"),
            Ok(ids) => {
                Check::pass("ssh_key", format!("`{}` is key {}", c.ssh_key_name.as_deref().unwrap_or(""), ids[0]))
            }
            Err(e) => Check::fail("ssh_key", e.into_provider().to_string()),
        });
        out.push(match c.firewall_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            None => Check::pass("firewall", "none configured"),
            Some(name) => match self.client.firewalls().await {
                Ok(fws) => match fws.iter().find(|f| f.name == name) {
                    Some(f) => Check::pass("firewall", format!("`{name}` is firewall {}", f.id)),
                    None => Check::fail("firewall", format!("no firewall named `{name}` in the account")),
                },
                Err(e) => Check::fail("firewall", e.into_provider().to_string()),
            },
        });
        out.push(self.check_tags());
        out.push(self.check_script());
        out
    }

    fn check_tags(&self) -> Check {
        let bad: Vec<&str> = self.config.tag_list().into_iter().filter(|t| !tags::is_legal(t)).collect();
        if bad.is_empty() {
            Check::pass("tags", format!("{} configured tag(s), all legal", self.config.tag_list().len()))
        } else {
            Check::fail(
                "tags",
                format!("not legal DigitalOcean tags (letters, digits, `:`, `-`, `_`; at most 255): {bad:?}"),
            )
        }
    }

    fn check_script(&self) -> Check {
        let template = &self.config.startup_script;
        if template.trim().is_empty() {
            return Check::pass("startup_script", "empty: the image itself must install and register the Kasm agent");
        }
        // Sample values: the real ones (tokens, certificates) can be longer; the margin says how much.
        let vars: script::Vars =
            script::PLACEHOLDERS.iter().map(|n| (n.to_string(), Some(format!("sample-{n}")))).collect();
        let rendered = match script::render(template, &vars) {
            Ok(r) => r,
            Err(e) => return Check::fail("startup_script", format!("does not render: {e}")),
        };
        match script::package(&self.config.script_rules(), OsFamily::Linux, rendered) {
            Err(e) => Check::fail("startup_script", e.to_string()),
            Ok(s) if s.len() > USER_DATA_MAX => Check::fail(
                "startup_script",
                format!("renders to {} bytes; user_data takes at most {USER_DATA_MAX}", s.len()),
            ),
            Ok(s) => Check::pass(
                "startup_script",
                format!(
                    "renders to {} bytes with sample values, {} below the user_data limit of {USER_DATA_MAX}",
                    s.len(),
                    USER_DATA_MAX - s.len()
                ),
            ),
        }
    }
}
