//! JSON log lines with the standard fields (STANDARDS.md, "Logs"):
//! `{"timestamp","level","service","message",...fields,...span fields}`.
//!
//! Span fields (such as `request_id` and `trace_id` from the request span) are
//! flattened into the line, so every event inside a request names it without
//! repeating it at each call site.

use std::fmt;

use serde_json::{Map, Value};
use tracing::{Event, Level, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter,
    field::Visit,
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields, format::JsonFields, format::Writer,
    },
    registry::LookupSpan,
};

/// Installs the process-wide JSON logger. `RUST_LOG` overrides `default_filter`.
/// Safe to call more than once: later calls are ignored (tests start many apps).
pub fn init(service: &str, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(JsonFields::new())
        .event_format(JsonLine {
            service: service.to_owned(),
        })
        .with_writer(std::io::stdout)
        .try_init();
}

/// The standard level names; `WARN` is spelled `WARNING` as in the seeds.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

struct JsonLine {
    service: String,
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        // Outer spans first, so inner spans and the event itself win on clashes.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields)
                {
                    line.extend(map);
                }
            }
        }
        let mut visitor = JsonVisitor(&mut line);
        event.record(&mut visitor);
        // The standard fields last: no event field may overwrite them.
        line.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        line.insert(
            "level".into(),
            Value::String(level_name(event.metadata().level()).into()),
        );
        line.insert("service".into(), Value::String(self.service.clone()));
        line.insert(
            "target".into(),
            Value::String(event.metadata().target().into()),
        );
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn lines_carry_standard_fields_and_span_fields() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine {
                service: "city".into(),
            })
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "req_1", trace_id = "t1");
            let _guard = span.enter();
            tracing::warn!(room = "general", service = "spoofed", "slow delivery");
        });
        let bytes = capture.0.lock().unwrap().clone();
        let line: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(line["level"], "WARNING");
        assert_eq!(line["service"], "city");
        assert_eq!(line["message"], "slow delivery");
        assert_eq!(line["room"], "general");
        assert_eq!(line["request_id"], "req_1");
        assert_eq!(line["trace_id"], "t1");
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
