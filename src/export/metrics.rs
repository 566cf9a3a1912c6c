//! The one table of every exported metric, and the per-interval
//! [`Publication`] the exporters (Prometheus text via the `metrics` facade,
//! OTLP push) are fed from.
//!
//! The packet path never touches a registry: workers bump plain counters
//! they own (`engine::Counters`, `runtime::IoCounters`); a publisher reads
//! them once per interval through the control channel, turns them into a
//! [`Publication`], and hands that to the exporters. Labels are bounded:
//! direction, packet kind, drop reason, RTCP mode, leg, RTT method, media
//! kind. SSRCs and addresses never label aggregate series; the optional
//! per-session series carry a `session` label under a hard cap.
//!
//! # The table
//!
//! Every counter struct is declared with `counters!`: one row per field,
//! and a field that is exported names its metric family on the same row —
//! its name, kind, unit, label names and help text. That one row makes the
//! struct's field, its share of `merge` (summing across workers), its series
//! for both exporters (`series`, turned into [`Sample`]s by the publisher)
//! and its line in the documentation ([`markdown_table`], pinned in README
//! by `tests/docs.rs`). Adding a counter:
//!
//! ```text
//! /// What it counts (field documentation).
//! pub widgets_lost: u64 => WIDGETS_LOST: counter("rtpmb_widgets_lost_total", "{widget}", [], "Widgets lost."),
//! ```
//!
//! A field without `=> …` is counted and merged (and shown by
//! `/v1/counters`) but not exported. A row may instead feed a family another
//! row defined, with fixed labels (`=> SEND_ERRORS {reason = "refused"}`);
//! array fields take one label from the type indexing them
//! (`[u64; DROP_REASONS] => … by DropReason`, see [`Dimension`]), and a field
//! type may add labels of its own ([`Series`]: packet kind, cap) or feed
//! several families, one per column (`=> PACKETS: … | BYTES: …`).
//!
//! The families are associated constants of their struct
//! (`Counters::PACKETS`, `IoCounters::SEND_ERRORS`), so code names a metric
//! by a path the compiler checks, never by a string. [`TABLES`] lists every
//! struct (and [`Observed`]: the histograms and per-session gauges the
//! publisher computes from session snapshots); [`METRICS`] is their
//! families in that order.

use crate::engine::Counters;
use crate::runtime::IoCounters;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::LazyLock;

use super::publish::{ExporterFacts, OtlpFacts, Readings};

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricKind {
    /// Monotonic, cumulative since start.
    Counter,
    Gauge,
    /// Fixed bucket upper bounds (Prometheus `le`), ascending.
    Histogram(&'static [f64]),
}

impl MetricKind {
    /// Prometheus `TYPE`.
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram(_) => "histogram",
        }
    }
}

/// One metric family.
#[derive(Debug)]
pub struct MetricDef {
    /// Prometheus name (base units, `_total` on counters).
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
    /// Label names; each has a bounded value set (see [`label_values`]),
    /// but for `session` on the optional per-session series.
    pub labels: &'static [&'static str],
    /// UCUM unit for OTLP ("s", "By", "1", "{packet}").
    pub unit: &'static str,
}

/// RTT buckets, seconds: 1 ms … 2 s.
pub const RTT_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0];
/// Jitter buckets, seconds: 0.5 ms … 500 ms.
pub const JITTER_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5];
/// Interval fraction-lost buckets, 0..1.
/// MOS 1–4.5 (G.107 Annex B): the usual "poor / fair / good" boundaries.
pub const MOS_BUCKETS: &[f64] = &[1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.3, 4.4, 4.5];
/// R 0–100 (G.109 categories at 50, 60, 70, 80, 90).
pub const R_FACTOR_BUCKETS: &[f64] = &[30.0, 50.0, 60.0, 70.0, 80.0, 85.0, 90.0, 93.0, 100.0];
pub const FRACTION_LOST_BUCKETS: &[f64] = &[0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

/// A label name and value.
pub type Label = (&'static str, &'static str);

/// Receives series: the family, its labels in the family's label order, and
/// the value.
pub type Emit<'a> = dyn FnMut(&'static MetricDef, &[Label], f64) + 'a;

/// Receives the series of one field: labels and value (the family is the
/// row's).
pub type EmitField<'a> = dyn FnMut(&[Label], f64) + 'a;

/// How a counter field's values from several workers add up.
pub trait Tally {
    fn merge(&mut self, other: &Self);
}

impl Tally for u64 {
    fn merge(&mut self, other: &Self) {
        *self += other;
    }
}

impl Tally for f64 {
    fn merge(&mut self, other: &Self) {
        *self += other;
    }
}

impl<T: Tally, const N: usize> Tally for [T; N] {
    fn merge(&mut self, other: &Self) {
        for (a, b) in self.iter_mut().zip(other) {
            a.merge(b);
        }
    }
}

impl<T: Tally + Clone> Tally for Option<T> {
    fn merge(&mut self, other: &Self) {
        match (self.as_mut(), other) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => *self = Some(b.clone()),
            (_, None) => {}
        }
    }
}

/// How an exported field's value becomes series of its row's families.
pub trait Series: Default {
    /// Emits every series of column `col` (the row's `col`-th family).
    /// `labels` holds the labels before this value's own (the row's fixed
    /// ones, an array's index label): push yours, emit, pop them again.
    fn series(&self, col: usize, labels: &mut Vec<Label>, emit: &mut EmitField<'_>);

    /// Every label set [`Series::series`] can emit (documentation and
    /// checks); values are meaningless.
    fn schema(col: usize, labels: &mut Vec<Label>, emit: &mut EmitField<'_>) {
        Self::default().series(col, labels, emit);
    }
}

impl Series for u64 {
    fn series(&self, _col: usize, labels: &mut Vec<Label>, emit: &mut EmitField<'_>) {
        emit(labels, *self as f64);
    }
}

impl Series for f64 {
    fn series(&self, _col: usize, labels: &mut Vec<Label>, emit: &mut EmitField<'_>) {
        emit(labels, *self);
    }
}

/// `None`: no series (a reading that is not available).
impl<T: Series> Series for Option<T> {
    fn series(&self, col: usize, labels: &mut Vec<Label>, emit: &mut EmitField<'_>) {
        if let Some(v) = self {
            v.series(col, labels, emit);
        }
    }

    fn schema(col: usize, labels: &mut Vec<Label>, emit: &mut EmitField<'_>) {
        T::schema(col, labels, emit);
    }
}

/// A bounded label whose values index counter arrays of length `N`: an
/// array field exported `by` it labels element `i` with `value(i)`.
pub trait Dimension<const N: usize> {
    const LABEL: &'static str;
    fn value(index: usize) -> &'static str;
}

/// [`Series::series`] of an array, labelled by the dimension indexing it.
pub fn series_by<D: Dimension<N>, T: Series, const N: usize>(
    _by: PhantomData<D>,
    values: &[T; N],
    col: usize,
    labels: &mut Vec<Label>,
    emit: &mut EmitField<'_>,
) {
    for (i, v) in values.iter().enumerate() {
        labels.push((D::LABEL, D::value(i)));
        v.series(col, labels, emit);
        labels.pop();
    }
}

/// [`Series::schema`] of an array labelled by the dimension indexing it.
pub fn schema_by<D: Dimension<N>, T: Series, const N: usize>(
    _by: PhantomData<D>,
    _values: PhantomData<[T; N]>,
    col: usize,
    labels: &mut Vec<Label>,
    emit: &mut EmitField<'_>,
) {
    for i in 0..N {
        labels.push((D::LABEL, D::value(i)));
        T::schema(col, labels, emit);
        labels.pop();
    }
}

/// A struct of counters declared with `counters!` (or the observed
/// families): the families it defines and every label set it exports.
pub trait Table {
    /// The families this struct's rows define, in row order (a row that
    /// feeds another struct's family does not list it again).
    const METRICS: &'static [&'static MetricDef];
    /// Every series the struct can export (values meaningless).
    fn schema(emit: &mut Emit<'_>);
}

/// Declares a counter struct from one row per field; see the module
/// documentation. Generates the struct, an associated `&MetricDef` constant
/// per family a row defines, `merge` (and [`Tally`]), `series` (every
/// exported series with its value) and [`Table`].
///
/// Row: `[docs] [vis] field: Type [=> FAMILY [| FAMILY …] [by Dimension]],`
/// where FAMILY is `NAME: counter|gauge("rtpmb_…", "unit", [labels], "help")`
/// (defines it) or `NAME` (a family defined by another row, or an
/// associated constant of the struct), either with optional fixed labels
/// `{label = "value", …}`.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $field_vis:vis $field:ident : $ty:ty
                $(=> $(
                    $family:ident
                    $(: $kind:ident($metric:literal, $unit:literal, [$($label:ident),*], $help:literal))?
                    $({ $($fixed:ident = $fixed_value:literal),* })?
                )|+ $(by $by:ty)?)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$field_meta])* $field_vis $field: $ty,)*
        }

        impl $name {
            $($($($(
                #[doc = $help]
                pub const $family: &'static $crate::export::metrics::MetricDef = &$crate::export::metrics::MetricDef {
                    name: $metric,
                    kind: $crate::export::metrics::counters!(@kind $kind),
                    help: $help,
                    labels: &[$(stringify!($label)),*],
                    unit: $unit,
                };
            )?)+)?)*

            /// Adds another worker's counters (process-wide totals).
            pub fn merge(&mut self, other: &Self) {
                $($crate::export::metrics::Tally::merge(&mut self.$field, &other.$field);)*
            }

            /// Every exported series with its current value.
            pub fn series(&self, emit: &mut $crate::export::metrics::Emit<'_>) {
                $($(
                    $crate::export::metrics::counters!(@field series, emit, &self.$field, $ty,
                        [$((Self::$family, &[$($((stringify!($fixed), $fixed_value)),*)?])),+] $(, $by)?);
                )?)*
            }
        }

        impl $crate::export::metrics::Tally for $name {
            fn merge(&mut self, other: &Self) {
                $name::merge(self, other);
            }
        }

        impl $crate::export::metrics::Table for $name {
            const METRICS: &'static [&'static $crate::export::metrics::MetricDef] = &[
                $($($($($crate::export::metrics::counters!(@first Self::$family, $kind),)?)+)?)*
            ];

            fn schema(emit: &mut $crate::export::metrics::Emit<'_>) {
                $($(
                    $crate::export::metrics::counters!(@field schema, emit, self, $ty,
                        [$((Self::$family, &[$($((stringify!($fixed), $fixed_value)),*)?])),+] $(, $by)?);
                )?)*
            }
        }
    };
    (@kind counter) => { $crate::export::metrics::MetricKind::Counter };
    (@kind gauge) => { $crate::export::metrics::MetricKind::Gauge };
    (@first $e:expr, $($ignored:tt)*) => { $e };
    // One field's families, column by column.
    (@field $how:ident, $emit:ident, $value:expr, $ty:ty, [$(($def:expr, $fixed:expr)),+] $(, $by:ty)?) => {
        let families: &[(&'static $crate::export::metrics::MetricDef, &[$crate::export::metrics::Label])] =
            &[$(($def, $fixed)),+];
        for (col, (def, fixed)) in families.iter().enumerate() {
            let mut labels = fixed.to_vec();
            let mut each = |labels: &[$crate::export::metrics::Label], value: f64| $emit(def, labels, value);
            $crate::export::metrics::counters!(@$how $value, $ty, col, &mut labels, &mut each $(, $by)?);
        }
    };
    (@series $value:expr, $ty:ty, $col:expr, $labels:expr, $emit:expr) => {
        $crate::export::metrics::Series::series($value, $col, $labels, $emit)
    };
    (@series $value:expr, $ty:ty, $col:expr, $labels:expr, $emit:expr, $by:ty) => {
        $crate::export::metrics::series_by(::std::marker::PhantomData::<$by>, $value, $col, $labels, $emit)
    };
    (@schema $value:expr, $ty:ty, $col:expr, $labels:expr, $emit:expr) => {
        <$ty as $crate::export::metrics::Series>::schema($col, $labels, $emit)
    };
    (@schema $value:expr, $ty:ty, $col:expr, $labels:expr, $emit:expr, $by:ty) => {
        $crate::export::metrics::schema_by(
            ::std::marker::PhantomData::<$by>,
            ::std::marker::PhantomData::<$ty>,
            $col,
            $labels,
            $emit,
        )
    };
}
pub(crate) use counters;

/// Families the publisher computes from session snapshots rather than
/// counts: per-stream histograms and the optional per-session gauges. Rows:
/// `NAME: histogram[BUCKETS]|gauge("rtpmb_…", "unit", [label = VALUES, …], "help")`.
macro_rules! observed {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $family:ident : $kind:ident $([$buckets:expr])?
                ($metric:literal, $unit:literal, [$($label:ident = $values:expr),*], $help:literal)
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name;

        impl $name {
            $(
                #[doc = $help]
                pub const $family: &'static MetricDef = &MetricDef {
                    name: $metric,
                    kind: observed!(@kind $kind $($buckets)?),
                    help: $help,
                    labels: &[$(stringify!($label)),*],
                    unit: $unit,
                };
            )*

            /// Each label's bounded values ([`ANY_SESSION`] for the `session` label).
            pub fn dimensions(def: &MetricDef) -> &'static [(&'static str, &'static [&'static str])] {
                $(
                    if def.name == $metric {
                        return &[$((stringify!($label), $values)),*];
                    }
                )*
                &[]
            }
        }

        impl Table for $name {
            const METRICS: &'static [&'static MetricDef] = &[$(Self::$family),*];

            fn schema(emit: &mut Emit<'_>) {
                for def in Self::METRICS {
                    product(def, Self::dimensions(def), &mut Vec::new(), emit);
                }
            }
        }
    };
    (@kind gauge) => { MetricKind::Gauge };
    (@kind histogram $buckets:expr) => { MetricKind::Histogram($buckets) };
}

/// Every combination of the dimensions' values.
fn product(
    def: &'static MetricDef,
    dims: &[(&'static str, &'static [&'static str])],
    labels: &mut Vec<Label>,
    emit: &mut Emit<'_>,
) {
    match dims.split_first() {
        None => emit(def, labels, 0.0),
        Some(((name, values), rest)) => {
            for v in *values {
                labels.push((name, v));
                product(def, rest, labels, emit);
                labels.pop();
            }
        }
    }
}

/// Stand-in value of the `session` label in the schema: a session id, one
/// per session up to `[metrics] max_session_series`.
pub const ANY_SESSION: &[&str] = &["*"];
/// `leg` values: the path between the proxy and that side's endpoint.
pub const LEGS: &[&str] = &["client", "upstream"];
/// `method` values of RTT samples.
pub const RTT_METHODS: &[&str] = &["sr_rr", "xr_dlrr", "stun"];
/// `direction` values: who sent the datagrams (indexed by `Side::index`).
pub const DIRECTIONS: &[&str] = &["from_client", "from_upstream"];
/// `kind` values of streams (from the payload type's clock rate entry).
pub const MEDIA_KINDS: &[&str] = &["audio", "video", "unknown"];

observed! {
    /// The histograms and per-session gauges the publisher observes in
    /// session snapshots (not counters: nothing to merge).
    pub struct Observed {
        STREAM_RTT_SECONDS: histogram[RTT_BUCKETS]("rtpmb_stream_rtt_seconds", "s",
            [leg = LEGS, method = RTT_METHODS],
            "Per-stream RTT of a leg (proxy to endpoint), one sample per stream per interval with a new measurement."),
        STREAM_JITTER_SECONDS: histogram[JITTER_BUCKETS]("rtpmb_stream_jitter_seconds", "s",
            [kind = MEDIA_KINDS],
            "Per-stream RFC 3550 interarrival jitter at the proxy, one sample per stream per interval."),
        STREAM_FRACTION_LOST: histogram[FRACTION_LOST_BUCKETS]("rtpmb_stream_fraction_lost", "1",
            [kind = MEDIA_KINDS],
            "Per-stream fraction of packets lost in the interval at the proxy (RFC 3550 A.3)."),
        STREAM_MOS: histogram[MOS_BUCKETS]("rtpmb_stream_mos", "1",
            [leg = LEGS, kind = MEDIA_KINDS],
            "Per-stream E-model MOS (G.107 Annex B; MOS-CQ once the leg has an RTT, else MOS-LQ) of audio on the leg it arrived over, one sample per stream per interval."),
        STREAM_R_FACTOR: histogram[R_FACTOR_BUCKETS]("rtpmb_stream_r_factor", "1",
            [leg = LEGS, kind = MEDIA_KINDS],
            "Per-stream E-model R-factor (narrowband scale) of audio on the leg it arrived over, one sample per stream per interval."),
        SESSION_RTT_SECONDS: gauge("rtpmb_session_rtt_seconds", "s",
            [session = ANY_SESSION, leg = LEGS],
            "Optional ([metrics] per_session): latest RTT of a session's leg."),
        SESSION_JITTER_SECONDS: gauge("rtpmb_session_jitter_seconds", "s",
            [session = ANY_SESSION, direction = DIRECTIONS],
            "Optional ([metrics] per_session): worst stream jitter of a session per direction."),
        SESSION_FRACTION_LOST: gauge("rtpmb_session_fraction_lost", "1",
            [session = ANY_SESSION, direction = DIRECTIONS],
            "Optional ([metrics] per_session): worst stream interval fraction lost per direction."),
    }
}

/// A table's families and its label sets ([`Table`]).
pub type TableEntry = (&'static [&'static MetricDef], fn(&mut Emit<'_>));

/// Every table, in export and documentation order. A new counter struct
/// goes here once.
pub const TABLES: &[TableEntry] = &[
    (Counters::METRICS, Counters::schema),
    (IoCounters::METRICS, IoCounters::schema),
    (Readings::METRICS, Readings::schema),
    (ExporterFacts::METRICS, ExporterFacts::schema),
    (OtlpFacts::METRICS, OtlpFacts::schema),
    (Observed::METRICS, Observed::schema),
];

/// Every metric the proxy exports. Names are pinned by `docker/metric-names.txt`
/// (the Grafana dashboard's queries are checked against it).
pub static METRICS: LazyLock<Vec<&'static MetricDef>> =
    LazyLock::new(|| TABLES.iter().flat_map(|(defs, _)| defs.iter().copied()).collect());

/// Looks a metric up by name (tests and tools; code names families by their
/// constants).
pub fn def(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().copied().find(|m| m.name == name)
}

/// Every label set of every family, in table order (the `session` label's
/// value is [`ANY_SESSION`]).
pub fn schema() -> Vec<(&'static MetricDef, Vec<Label>)> {
    let mut out = Vec::new();
    for (_, schema) in TABLES {
        schema(&mut |def, labels, _| out.push((def, labels.to_vec())));
    }
    out
}

/// The values each of a family's labels takes, in the family's label
/// order and first-seen value order.
pub fn label_values(def: &MetricDef) -> Vec<(&'static str, Vec<&'static str>)> {
    static SCHEMA: LazyLock<Vec<(&'static MetricDef, Vec<Label>)>> = LazyLock::new(schema);
    let mut out: Vec<(&'static str, Vec<&'static str>)> = def.labels.iter().map(|l| (*l, Vec::new())).collect();
    for (d, labels) in SCHEMA.iter() {
        if d.name != def.name {
            continue;
        }
        for (name, value) in labels {
            if let Some((_, values)) = out.iter_mut().find(|(n, _)| n == name) {
                if !values.contains(value) {
                    values.push(value);
                }
            }
        }
    }
    out
}

/// README's metric reference: one Markdown row per family, with every label
/// value (`tests/docs.rs` checks README holds exactly this).
pub fn markdown_table() -> String {
    let mut out = String::from("| metric | type | labels | description |\n|---|---|---|---|\n");
    for m in METRICS.iter() {
        let labels: Vec<String> = label_values(m)
            .into_iter()
            .map(|(name, values)| {
                if values == ANY_SESSION {
                    format!("`{name}` (session id)")
                } else {
                    let values: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
                    format!("`{name}`: {}", values.join(", "))
                }
            })
            .collect();
        let labels = if labels.is_empty() {
            "–".to_string()
        } else {
            labels.join("; ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {labels} | {} |\n",
            m.name,
            m.kind.name(),
            m.help
        ));
    }
    out
}

/// A label set: (name, value) in the table's label order.
pub type Labels = Vec<(&'static str, String)>;

/// A counter's cumulative value or a gauge's current value.
#[derive(Clone, Debug)]
pub struct Sample {
    pub metric: &'static MetricDef,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    /// A series a counter struct emitted (`series`).
    pub fn new(metric: &'static MetricDef, labels: &[Label], value: f64) -> Sample {
        Sample {
            metric,
            labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
        }
    }

    /// An observation or gauge of an [`Observed`] family: one value per
    /// label, in the family's label order.
    pub fn observed(metric: &'static MetricDef, values: &[&str], value: f64) -> Sample {
        debug_assert!(
            {
                let dims = Observed::dimensions(metric);
                dims.len() == values.len()
                    && dims
                        .iter()
                        .zip(values)
                        .all(|((_, allowed), v)| *allowed == ANY_SESSION || allowed.contains(v))
            },
            "{}: {values:?} are not its labels' values",
            metric.name
        );
        Sample {
            metric,
            labels: metric
                .labels
                .iter()
                .zip(values)
                .map(|(k, v)| (*k, v.to_string()))
                .collect(),
            value,
        }
    }
}

/// End-of-session quality record (OTLP log record; also the `session`
/// event on the stats stream).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionQuality {
    pub session: String,
    pub client: String,
    pub upstream: String,
    pub duration_secs: f64,
    /// Wall clock of the session's last activity, ns since the Unix epoch.
    pub end_unix_nanos: u64,
    pub legs: Vec<LegQuality>,
}

/// Final figures of one leg: what the proxy received from that side.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LegQuality {
    pub leg: &'static str,
    pub streams: usize,
    pub packets_received: u64,
    pub packets_lost: i64,
    /// Lost / expected over the session, 0..1.
    pub loss_ratio: f64,
    /// Worst final RFC 3550 jitter of the leg's streams, seconds.
    pub jitter_secs: Option<f64>,
    /// Mean RTT of the leg (any method), seconds.
    pub rtt_secs: Option<f64>,
    /// E-model MOS of the audio streams that arrived over this leg (MOS-CQ
    /// where the leg had an RTT, else MOS-LQ), each rated over the whole
    /// session: the worst stream's and the mean.
    pub mos_worst: Option<f64>,
    pub mos_mean: Option<f64>,
    /// Packets lost on this leg, whichever direction: what the proxy found
    /// missing from streams arriving over it, plus what far receivers
    /// reported lost beyond the proxy on streams it carried onward
    /// (`x-lossClientLeg` / `x-lossUpstreamLeg` summed).
    pub lost_on_leg: i64,
}

/// Everything exporters get per interval.
#[derive(Clone, Debug, Default)]
pub struct Publication {
    /// When the values were read, ns since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Process start (start of every cumulative counter), ns since the epoch.
    pub start_unix_nanos: u64,
    /// Counters (cumulative) and gauges (current), every label set.
    pub samples: Vec<Sample>,
    /// Histogram observations made this interval (exporters aggregate).
    pub observations: Vec<Sample>,
    /// Sessions that ended since the previous publication.
    pub ended_sessions: Vec<SessionQuality>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn valid_name(n: &str) -> bool {
        // Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*; ours are lower-case snake.
        n.starts_with("rtpmb_")
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }

    #[test]
    fn every_metric_is_defined_once_with_a_valid_name() {
        let mut seen = HashSet::new();
        for m in METRICS.iter() {
            assert!(seen.insert(m.name), "{} defined twice", m.name);
            assert!(valid_name(m.name), "{} is not a valid name", m.name);
            assert!(!m.help.is_empty(), "{} has no help", m.name);
            match m.kind {
                MetricKind::Counter => assert!(m.name.ends_with("_total"), "counter {} lacks _total", m.name),
                _ => assert!(!m.name.ends_with("_total"), "{} is not a counter", m.name),
            }
            if m.unit == "s" {
                assert!(
                    m.name.ends_with("_seconds"),
                    "{}: base unit seconds in the name",
                    m.name
                );
            }
            if m.unit == "By" {
                assert!(m.name.contains("_bytes"), "{}: bytes in the name", m.name);
            }
        }
    }

    #[test]
    fn every_series_carries_its_familys_labels_once() {
        let names: HashSet<&str> = METRICS.iter().map(|m| m.name).collect();
        let mut seen = HashSet::new();
        for (def, labels) in schema() {
            // A row feeding another struct's family: that family is listed.
            assert!(names.contains(def.name), "{} is in no table", def.name);
            let label_names: Vec<&str> = labels.iter().map(|(n, _)| *n).collect();
            assert_eq!(label_names, def.labels, "{}", def.name);
            // Two series with one label set would overwrite each other.
            assert!(seen.insert((def.name, labels.clone())), "{} {labels:?} twice", def.name);
        }
        for m in METRICS.iter() {
            assert!(seen.iter().any(|(n, _)| *n == m.name), "{} has no series", m.name);
        }
    }

    #[test]
    fn label_sets_are_bounded_and_session_labels_only_on_per_session_series() {
        for m in METRICS.iter() {
            let mut series = 1;
            for (label, values) in label_values(m) {
                assert!(
                    !["ssrc", "address", "client", "upstream"].contains(&label),
                    "{} has an unbounded label {label}",
                    m.name
                );
                if label == "session" {
                    assert!(m.name.starts_with("rtpmb_session_"), "{} is aggregate", m.name);
                    assert_eq!(values, ANY_SESSION, "{}", m.name);
                } else {
                    assert!(!values.is_empty() && values.len() <= 32, "{}: {label}", m.name);
                    assert!(!values.contains(&ANY_SESSION[0]), "{}: {label}", m.name);
                    series *= values.len();
                }
            }
            assert!(series <= 64, "{} may have {series} series", m.name);
        }
    }

    #[test]
    fn histogram_buckets_are_ascending_and_non_empty() {
        for m in METRICS.iter() {
            if let MetricKind::Histogram(b) = m.kind {
                assert!(!b.is_empty(), "{}", m.name);
                assert!(b.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
            }
        }
    }

    #[test]
    fn the_markdown_table_has_a_row_per_metric() {
        let table = markdown_table();
        assert_eq!(table.lines().count(), METRICS.len() + 2);
        for m in METRICS.iter() {
            assert!(
                table.contains(&format!("| `{}` | {} |", m.name, m.kind.name())),
                "{}",
                m.name
            );
        }
        assert!(table.contains("`reason`: `empty`, `unknown_protocol`"), "{table}");
        assert!(table.contains("`no_session`"), "{table}");
    }

    #[test]
    fn docker_metric_names_match_the_table() {
        // `TYPE NAME LABELS` per line; the Grafana dashboard is checked
        // against this file by scripts/check-deploy.sh.
        let pinned = include_str!("../../docker/metric-names.txt");
        let rows: Vec<(String, String, String)> = pinned
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_string(), f[1].to_string(), f[2].to_string())
            })
            .collect();
        let table: Vec<(String, String, String)> = METRICS
            .iter()
            .map(|m| {
                let labels = if m.labels.is_empty() {
                    "-".to_string()
                } else {
                    m.labels.join(",")
                };
                (m.kind.name().to_string(), m.name.to_string(), labels)
            })
            .collect();
        assert_eq!(rows, table, "docker/metric-names.txt and the table differ");
    }
}
