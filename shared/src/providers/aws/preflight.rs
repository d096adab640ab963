//! `kasm-autoscale preflight` for AWS EC2: what an operator would otherwise learn from a failed
//! RunInstances — credentials and region, the AMI, security groups, subnet, key pair (and its private
//! key when Windows passwords are retrieved), and the startup script's size. Read-only: Describe
//! calls only (the IAM actions `ec2:DescribeRegions`, `ec2:DescribeImages`, `ec2:DescribeSecurityGroups`,
//! `ec2:DescribeSubnets`, `ec2:DescribeKeyPairs`).

use super::{AwsProvider, from_sdk};
use crate::config::ProviderConfigCommon;
use crate::providers::Check;
use crate::script;

/// The names of every check, in the order they are reported.
pub const CHECKS: [&str; 6] = ["credentials", "image", "security_groups", "subnet", "key_pair", "startup_script"];

impl AwsProvider {
    /// Runs every preflight check with this provider's client and credentials.
    pub async fn preflight(&self) -> Vec<Check> {
        let c = &self.config;
        let mut out = Vec::with_capacity(CHECKS.len());
        match self.ec2.describe_regions().region_names(&c.aws_region).send().await {
            Ok(_) => out.push(Check::pass("credentials", format!("EC2 in {} accepts the credentials", c.aws_region))),
            Err(e) => {
                out.push(Check::fail("credentials", from_sdk("DescribeRegions", e).to_string()));
                out.extend(
                    CHECKS[1..CHECKS.len() - 1]
                        .iter()
                        .map(|n| Check::fail(n, "not checked: the API could not be used")),
                );
                out.push(self.check_script());
                return out;
            }
        }
        out.push(match self.ec2.describe_images().image_ids(&c.aws_ec2_ami_id).send().await {
            Ok(o) => match o.images().first() {
                Some(img) => Check::pass(
                    "image",
                    format!(
                        "{} ({}), root device {}",
                        c.aws_ec2_ami_id,
                        img.name().unwrap_or("no name"),
                        img.root_device_name().unwrap_or("?")
                    ),
                ),
                None => Check::fail("image", format!("AMI {} is not visible in {}", c.aws_ec2_ami_id, c.aws_region)),
            },
            Err(e) => Check::fail("image", from_sdk("DescribeImages", e).to_string()),
        });
        let sgs: Vec<String> =
            c.aws_ec2_security_group_ids.0.iter().filter(|s| !s.trim().is_empty()).cloned().collect();
        out.push(if sgs.is_empty() {
            Check::pass("security_groups", "none set: the VPC's default security group is used")
        } else {
            match self.ec2.describe_security_groups().set_group_ids(Some(sgs.clone())).send().await {
                Ok(o) if o.security_groups().len() == sgs.len() => Check::pass("security_groups", sgs.join(", ")),
                Ok(o) => {
                    let found: Vec<&str> = o.security_groups().iter().filter_map(|g| g.group_id()).collect();
                    let missing: Vec<&String> = sgs.iter().filter(|s| !found.contains(&s.as_str())).collect();
                    Check::fail("security_groups", format!("not found: {missing:?}"))
                }
                Err(e) => Check::fail("security_groups", from_sdk("DescribeSecurityGroups", e).to_string()),
            }
        });
        out.push(match c.aws_ec2_subnet_id.as_deref().filter(|s| !s.trim().is_empty()) {
            None => Check::pass("subnet", "none set: EC2 picks the default subnet"),
            Some(id) => match self.ec2.describe_subnets().subnet_ids(id).send().await {
                Ok(o) if !o.subnets().is_empty() => {
                    Check::pass("subnet", format!("{id} in {}", o.subnets()[0].availability_zone().unwrap_or("?")))
                }
                Ok(_) => Check::fail("subnet", format!("subnet {id} not found")),
                Err(e) => Check::fail("subnet", from_sdk("DescribeSubnets", e).to_string()),
            },
        });
        out.push(self.check_key_pair().await);
        out.push(self.check_script());
        out
    }

    async fn check_key_pair(&self) -> Check {
        let Some(name) = self.config.ssh_key_name.as_deref().filter(|s| !s.trim().is_empty()) else {
            return Check::pass("key_pair", "none set");
        };
        match self.ec2.describe_key_pairs().key_names(name).send().await {
            Ok(o) if !o.key_pairs().is_empty() => {}
            Ok(_) => return Check::fail("key_pair", format!("key pair {name} not found")),
            Err(e) => return Check::fail("key_pair", from_sdk("DescribeKeyPairs", e).to_string()),
        }
        if !self.config.retrieve_windows_vm_password {
            return Check::pass("key_pair", format!("{name} exists"));
        }
        match self.private_key().await {
            Ok(_) => Check::pass("key_pair", format!("{name} exists and its private key is readable")),
            Err(e) => Check::fail("key_pair", e.to_string()),
        }
    }

    fn check_script(&self) -> Check {
        let template = &self.config.startup_script;
        if template.trim().is_empty() {
            return Check::pass("startup_script", "empty: the AMI itself must install and register the Kasm agent");
        }
        // Sample values: the real ones (tokens, certificates) can be longer.
        let vars: script::Vars =
            script::PLACEHOLDERS.iter().map(|n| (n.to_string(), Some(format!("sample-{n}")))).collect();
        let rendered = match script::render(template, &vars) {
            Ok(r) => r,
            Err(e) => return Check::fail("startup_script", format!("does not render: {e}")),
        };
        match script::package(&self.config.script_rules(), self.config.os(), rendered) {
            Ok(s) => Check::pass("startup_script", format!("renders to {} bytes with sample values", s.len())),
            Err(e) => Check::fail("startup_script", e.to_string()),
        }
    }
}
