//! The trace export's settings, and the standard `OTEL_*` variables that
//! override them.

use garde::Validate;
use pattern_error::{Error, Kind};
use serde::{Deserialize, Serialize};

/// Where and how spans are exported; see the [module docs](super).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP collector's base address (`http://127.0.0.1:4318`);
    /// spans go to `{endpoint}/v1/traces`. No address (here or in
    /// [`traces_endpoint`](Self::traces_endpoint)), no export.
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` sets it.
    #[garde(inner(custom(is_endpoint)))]
    pub endpoint: Option<String>,
    /// The address spans are sent to, used as it is; wins over
    /// [`endpoint`](Self::endpoint). `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// sets it.
    #[garde(inner(custom(is_endpoint)))]
    pub traces_endpoint: Option<String>,
    /// Which tracing spans (and events, as span events) are exported
    /// besides the requests' server spans, which the sampler alone
    /// decides: `info` (what a service makes at INFO),
    /// `info,my_crate=debug` (the syntax of `RUST_LOG`; the log filter does
    /// not apply). The access log's events and the log's request spans
    /// never are: they repeat the server span.
    #[garde(custom(is_filter))]
    pub filter: String,
    /// The `service.name` of every span (`OTEL_SERVICE_NAME`).
    #[garde(length(min = 1, max = 255))]
    pub service_name: String,
    /// Which traces are recorded (`OTEL_TRACES_SAMPLER`).
    #[garde(skip)]
    pub sampler: Sampler,
    /// The share of traces a ratio sampler records, 0 to 1
    /// (`OTEL_TRACES_SAMPLER_ARG`).
    #[garde(range(min = 0.0, max = 1.0))]
    pub sampler_ratio: f64,
    /// Finished spans waiting for export at most; beyond, spans are
    /// dropped (and counted), never waited for (`OTEL_BSP_MAX_QUEUE_SIZE`).
    #[garde(range(min = 1, max = 1_000_000))]
    pub max_queue_spans: usize,
    /// Spans per export request at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    #[garde(range(min = 1, max = 100_000))]
    pub max_batch_spans: usize,
    /// How long a span waits for a batch to fill before it is sent
    /// anyway (`OTEL_BSP_SCHEDULE_DELAY`, ms).
    #[garde(range(min = 1, max = 3_600_000))]
    pub export_interval_ms: u64,
    /// How long one export request may take (`OTEL_BSP_EXPORT_TIMEOUT`,
    /// ms); a slower collector loses that batch (counted).
    #[garde(range(min = 1, max = 600_000))]
    pub export_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    /// No export; spans at `info`; `unknown_service`; parent-based, always on for new
    /// traces; 2048 spans queued, 512 per batch, sent within 5 s, each
    /// export within 10 s (OpenTelemetry's defaults).
    fn default() -> Self {
        Self {
            endpoint: None,
            traces_endpoint: None,
            filter: "info".to_owned(),
            service_name: "unknown_service".to_owned(),
            sampler: Sampler::ParentBasedAlwaysOn,
            sampler_ratio: 1.0,
            max_queue_spans: 2048,
            max_batch_spans: 512,
            export_interval_ms: 5000,
            export_timeout_ms: 10_000,
        }
    }
}

/// Which traces are recorded: OpenTelemetry's samplers, named as
/// `OTEL_TRACES_SAMPLER` names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    /// Every trace.
    AlwaysOn,
    /// None.
    AlwaysOff,
    /// [`sampler_ratio`](TelemetryConfig::sampler_ratio) of the traces,
    /// whatever the caller decided.
    #[serde(rename = "traceidratio")]
    TraceIdRatio,
    /// As the caller decided; every new trace.
    #[default]
    #[serde(rename = "parentbased_always_on")]
    ParentBasedAlwaysOn,
    /// As the caller decided; no new trace.
    #[serde(rename = "parentbased_always_off")]
    ParentBasedAlwaysOff,
    /// As the caller decided; [`sampler_ratio`](TelemetryConfig::sampler_ratio)
    /// of the new traces.
    #[serde(rename = "parentbased_traceidratio")]
    ParentBasedTraceIdRatio,
}

impl Sampler {
    /// The sampler `OTEL_TRACES_SAMPLER` names.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::TraceIdRatio,
            "parentbased_always_on" => Self::ParentBasedAlwaysOn,
            "parentbased_always_off" => Self::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => Self::ParentBasedTraceIdRatio,
            _ => return None,
        })
    }
}

fn is_filter(text: &str, _: &()) -> garde::Result {
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(drop)
        .map_err(|err| garde::Error::new(format!("`{text}` is not a filter: {err}")))
}

fn is_endpoint(endpoint: &str, _: &()) -> garde::Result {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|err| garde::Error::new(format!("not an address: {err}")))?;
    let authority = uri
        .authority()
        .map(http::uri::Authority::as_str)
        .unwrap_or("");
    if authority.contains('@') {
        return Err(garde::Error::new(
            "an address with credentials in it is refused",
        ));
    }
    if !authority.ends_with(']')
        && let Some((_, port)) = authority.rsplit_once(':')
        && port.parse::<u16>().is_err()
    {
        return Err(garde::Error::new(
            "the port is not a number from 0 to 65535",
        ));
    }
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(()),
        Some("https") => Err(garde::Error::new(
            "https is not supported: export to a collector over http (a local or sidecar collector forwards over TLS)",
        )),
        _ => Err(garde::Error::new("an http://host:port address is needed")),
    }
}

impl TelemetryConfig {
    /// The address spans are sent to, if any: [`traces_endpoint`](Self::traces_endpoint)
    /// as it is, else [`endpoint`](Self::endpoint) with `/v1/traces`
    /// appended to its path (as the specification has it).
    pub fn traces_url(&self) -> Option<String> {
        if let Some(traces) = &self.traces_endpoint {
            return Some(traces.clone());
        }
        let base = self.endpoint.as_deref()?;
        Some(format!("{}/v1/traces", base.trim_end_matches('/')))
    }

    /// These settings with the standard `OTEL_*` variables of the process
    /// applied over them, then validated.
    pub fn with_env(self) -> Result<Self, Error> {
        self.with_vars(|name| std::env::var(name).ok())
    }

    /// These settings with `OTEL_*` variables as `var` reads them applied
    /// over them (an empty value is unset, as the specification says),
    /// then validated: an unknown sampler or a number that does not parse
    /// is an error, not ignored.
    pub fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let bad = |name: &str, value: &str, why: &str| {
            Error::new(Kind::InvalidInput, format!("{name}={value:?}: {why}"))
        };
        if let Some(base) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self.endpoint = Some(base);
        }
        if let Some(traces) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            self.traces_endpoint = Some(traces);
        }
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            self.endpoint = None;
            self.traces_endpoint = None;
        }
        if let Some(name) = get("OTEL_SERVICE_NAME") {
            self.service_name = name;
        }
        if let Some(name) = get("OTEL_TRACES_SAMPLER") {
            self.sampler = Sampler::from_name(name.trim())
                .ok_or_else(|| bad("OTEL_TRACES_SAMPLER", &name, "not a sampler this SDK has"))?;
        }
        if let Some(arg) = get("OTEL_TRACES_SAMPLER_ARG") {
            self.sampler_ratio = arg
                .trim()
                .parse()
                .map_err(|_| bad("OTEL_TRACES_SAMPLER_ARG", &arg, "not a number"))?;
        }
        let number = |name: &str| -> Result<Option<u64>, Error> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| bad(name, &v, "not a whole number"))
                })
                .transpose()
        };
        if let Some(n) = number("OTEL_BSP_MAX_QUEUE_SIZE")? {
            self.max_queue_spans = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
            self.max_batch_spans = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = number("OTEL_BSP_SCHEDULE_DELAY")? {
            self.export_interval_ms = n;
        }
        if let Some(n) = number("OTEL_BSP_EXPORT_TIMEOUT")? {
            self.export_timeout_ms = n;
        }
        self.checked()
    }

    /// These settings, or what is wrong with them.
    pub fn checked(self) -> Result<Self, Error> {
        self.validate().map_err(|report| {
            Error::new(
                Kind::InvalidInput,
                format!("the telemetry settings are invalid: {report}"),
            )
        })?;
        if !self.sampler_ratio.is_finite() {
            return Err(Error::new(
                Kind::InvalidInput,
                "the telemetry settings are invalid: sampler_ratio is not a number",
            ));
        }
        if self.max_batch_spans > self.max_queue_spans {
            return Err(Error::new(
                Kind::InvalidInput,
                "the telemetry settings are invalid: max_batch_spans is above max_queue_spans",
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<TelemetryConfig, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TelemetryConfig::default().with_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_standard_variables_apply() {
        let config = with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_SERVICE_NAME", "inventory"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1000"),
        ])
        .unwrap();
        assert_eq!(
            config.traces_url().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(config.service_name, "inventory");
        assert_eq!(config.sampler, Sampler::ParentBasedTraceIdRatio);
        assert_eq!(config.sampler_ratio, 0.1);
        assert_eq!((config.max_queue_spans, config.max_batch_spans), (100, 10));
        assert_eq!(
            (config.export_interval_ms, config.export_timeout_ms),
            (200, 1000)
        );

        // The signal's own address is used as it is, and wins; a base
        // address with a path gets `/v1/traces` after it.
        let config = with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://b:4318/otlp/spans",
            ),
        ])
        .unwrap();
        assert_eq!(
            config.traces_url().as_deref(),
            Some("http://b:4318/otlp/spans")
        );
        let config = with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://gw/otlp/")]).unwrap();
        assert_eq!(
            config.traces_url().as_deref(),
            Some("http://gw/otlp/v1/traces")
        );
        // Disabled: nothing is sent. Empty values are unset.
        let config = with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://a:4318/v1/traces",
            ),
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_SERVICE_NAME", ""),
        ])
        .unwrap();
        assert_eq!(config.traces_url(), None);
        assert_eq!(config.service_name, "unknown_service");
        assert_eq!(with(&[]).unwrap(), TelemetryConfig::default());
    }

    #[test]
    fn bad_values_are_errors() {
        for vars in [
            &[("OTEL_TRACES_SAMPLER", "sometimes")][..],
            &[("OTEL_TRACES_SAMPLER_ARG", "half")],
            &[("OTEL_TRACES_SAMPLER_ARG", "1.5")],
            &[("OTEL_TRACES_SAMPLER_ARG", "-0.1")],
            &[("OTEL_TRACES_SAMPLER_ARG", "NaN")],
            &[("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
            &[("OTEL_BSP_MAX_QUEUE_SIZE", "-1")],
            &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096")],
            &[("OTEL_BSP_SCHEDULE_DELAY", "0")],
            &[("OTEL_BSP_EXPORT_TIMEOUT", "18446744073709551615")],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318")],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://")],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:99999")],
            &[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://user:pw@collector:4318",
            )],
            &[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "ftp://collector/v1/traces",
            )],
            &[("OTEL_SERVICE_NAME", &"x".repeat(256))],
        ] {
            let err = with(vars).unwrap_err();
            assert_eq!(err.kind(), Kind::InvalidInput, "{vars:?}: {err}");
        }
        let bad_filter = TelemetryConfig {
            filter: "info,[".to_owned(),
            ..TelemetryConfig::default()
        }
        .checked()
        .unwrap_err();
        assert_eq!(bad_filter.kind(), Kind::InvalidInput, "{bad_filter}");
        // At the bounds: accepted.
        with(&[
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "1"),
        ])
        .unwrap();
        with(&[("OTEL_TRACES_SAMPLER_ARG", "1")]).unwrap();
    }
}
