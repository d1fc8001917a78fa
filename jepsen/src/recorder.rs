//! Records a running test's history: each event is timed, appended to history.jsonl as it
//! happens (so a run that dies still leaves what it saw) and kept for the checkers.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use crate::history::{write_event, Event, EventType, Process};

pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

struct Inner {
    file: BufWriter<File>,
    events: Vec<Event>,
    /// The first write error; later events are still kept in memory.
    error: Option<io::Error>,
}

impl Recorder {
    pub fn create(path: &Path) -> io::Result<Recorder> {
        Ok(Recorder {
            start: Instant::now(),
            inner: Mutex::new(Inner {
                file: BufWriter::new(File::create(path)?),
                events: Vec::new(),
                error: None,
            }),
        })
    }

    /// Nanoseconds since the test started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn record(
        &self,
        process: Process,
        event_type: EventType,
        function: &str,
        value: Value,
        key: Option<&str>,
        error: Option<String>,
    ) {
        let mut inner = self.inner.lock().expect("no thread panics while recording");
        // Timed under the lock, so the file's order is the order of the times.
        let event = Event {
            process,
            event_type,
            function: function.to_string(),
            value,
            time: self.now(),
            key: key.map(str::to_string),
            error,
        };
        if let Err(error) = write_event(&mut inner.file, &event) {
            inner.error.get_or_insert(error);
        }
        inner.events.push(event);
    }

    /// Flushes the file and hands back every event, or the first error writing them.
    pub fn finish(self) -> io::Result<Vec<Event>> {
        let mut inner = self
            .inner
            .into_inner()
            .expect("no thread panics while recording");
        if let Some(error) = inner.error {
            return Err(error);
        }
        inner.file.flush()?;
        Ok(inner.events)
    }
}
