//! A tracing layer that keeps every span's name and fields, for tests that check what the
//! library's spans record.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// One span as recorded: its name and the fields it has been given so far.
#[derive(Debug, Clone, Default)]
pub struct CapturedSpan {
    /// The span's name, e.g. `groupcache.get`.
    pub name: String,
    /// Each recorded field as text.
    pub fields: HashMap<String, String>,
}

impl CapturedSpan {
    /// A field's value, if recorded.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Captures spans from every thread; clone it to read what was captured.
#[derive(Debug, Clone, Default)]
pub struct SpanCapture {
    spans: Arc<Mutex<HashMap<u64, CapturedSpan>>>,
}

impl SpanCapture {
    /// Every span captured so far that is named `name`.
    pub fn named(&self, name: &str) -> Vec<CapturedSpan> {
        self.spans
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for SpanCapture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut span = CapturedSpan {
            name: attrs.metadata().name().to_owned(),
            fields: HashMap::new(),
        };
        attrs.record(&mut Fields(&mut span.fields));
        self.spans.lock().unwrap().insert(id.into_u64(), span);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
}
