//! One spelling of the labels the W3C reports and the metrics share: a
//! leg's name and a stream's media kind.

use crate::engine::Side;
use crate::stats::clock_rate::MediaKind;

/// `client` or `upstream`: the leg a side's datagrams arrive on.
pub(crate) fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Upstream => "upstream",
    }
}

/// `audio`, `video`, or `unknown` for a payload type without a known rate.
pub(crate) fn media_kind(kind: Option<MediaKind>) -> &'static str {
    match kind {
        Some(MediaKind::Audio) => "audio",
        Some(MediaKind::Video) => "video",
        None => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(side_name(Side::Client), "client");
        assert_eq!(side_name(Side::Upstream), "upstream");
        assert_eq!(media_kind(Some(MediaKind::Audio)), "audio");
        assert_eq!(media_kind(Some(MediaKind::Video)), "video");
        assert_eq!(media_kind(None), "unknown");
    }
}
