//! A loader runs in the trace of the `get` that needed it, on this peer and on the owner, so
//! that clients it calls with `PropagateTrace` join that trace.

use std::sync::{Arc, Mutex};

use groupcache::trace::TraceContext;
use groupcache::{BoxError, Groupcache, ValueLoader};
use groupcache_tests::{start_like_the_quick_start, within_limit};

/// A key, and the trace id its load ran in.
type Seen = (String, Option<String>);

/// Records the trace id it runs in, per key.
#[derive(Clone, Default)]
struct TraceRecorder(Arc<Mutex<Vec<Seen>>>);

#[groupcache::async_trait]
impl ValueLoader for TraceRecorder {
    type Value = String;
    async fn load(&self, key: &str) -> Result<String, BoxError> {
        let current = TraceContext::current().map(|c| c.trace_id());
        self.0.lock().unwrap().push((key.to_owned(), current));
        Ok(key.to_owned())
    }
}

#[tokio::test]
async fn the_loader_runs_in_the_callers_trace_here_and_on_the_owner() {
    within_limit(async {
        let recorder = TraceRecorder::default();
        let peers = start_like_the_quick_start(2, |me| {
            let cache = Groupcache::builder(me).build();
            let group = cache.group("traced", recorder.clone()).build().unwrap();
            (cache, group)
        })
        .await;
        let (asker, owner) = (&peers[0], &peers[1]);
        let key_of = |owned_by: &Groupcache, prefix: &str| {
            (0..)
                .map(|i| format!("{prefix}-{i}"))
                .find(|k| asker.0.owner_of(k) == *owned_by.me())
                .unwrap()
        };
        let remote = key_of(&owner.0, "remote");
        let local = key_of(&asker.0, "local");

        let caller = TraceContext::new_root();
        caller.scope(asker.1.get(&remote)).await.unwrap();
        caller.scope(asker.1.get(&local)).await.unwrap();
        // Without a trace, none is made up for the loader.
        asker.1.get(&key_of(&asker.0, "untraced")).await.unwrap();

        let seen = recorder.0.lock().unwrap().clone();
        let trace_of = |key: &str| {
            seen.iter()
                .find(|(k, _)| k == key)
                .unwrap_or_else(|| panic!("{key} was not loaded"))
                .1
                .clone()
        };
        assert_eq!(trace_of(&remote), Some(caller.trace_id()), "on the owner");
        assert_eq!(trace_of(&local), Some(caller.trace_id()), "on this peer");
        assert_eq!(trace_of(&key_of(&asker.0, "untraced")), None);
        assert_eq!(
            owner.1.stats().local_loads,
            1,
            "the remote key loaded on its owner"
        );
    })
    .await;
}
