//! The media repository.

mod ip;

pub use self::ip::{IpRange, may_fetch_from};
