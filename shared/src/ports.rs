//! The ports [`crate::app`] is generic over, in one place. Each has a real implementation and an
//! in-memory one.

pub use crate::clock::{Clock, SystemClock, VirtualClock};
pub use crate::dns::DnsProvider;
pub use crate::kasm::KasmApi;
pub use crate::providers::VmProvider;
pub use crate::secrets::Secrets;
pub use crate::store::Store;
