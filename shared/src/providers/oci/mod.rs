//! Oracle Cloud Infrastructure (OCI): request signing for the Core (compute), Identity and DNS APIs.

pub mod signer;
