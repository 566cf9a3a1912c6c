//! One spelling of the labels the W3C reports and the metrics share: a
//! leg's name (a stream's kind is [`crate::stats::clock_rate::MediaKind::name`]).

use crate::engine::Side;

/// `client` or `upstream`: the leg a side's datagrams arrive on.
pub(crate) fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Upstream => "upstream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(side_name(Side::Client), "client");
        assert_eq!(side_name(Side::Upstream), "upstream");
    }
}
