//! The paths of the former single-file API module, kept for their callers
//! (tests, the fuzz target, the demo): the server is [`super::api`], the
//! metrics pipeline [`super::pipeline`], and [`start`] is
//! [`crate::runtime::start_api`], which starts both.

pub use super::api::{parse_sdp_body, parse_srtp_body, ApiOptions, ApiServer};
pub use crate::runtime::start_api as start;
