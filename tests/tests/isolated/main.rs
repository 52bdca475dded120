//! Tests that each run alone in a process of their own (see `groupcache_tests::own_process`):
//! they install a global tracing subscriber or metrics recorder, or measure the whole process
//! (RSS, every log line, every span).

mod counters_and_metrics;
mod hot_copy_memory;
mod quiet_logs;
mod stalled_streams;
mod token_secrecy;
mod tracing_across_peers;
