//! Long blocking storage work (writing a snapshot's SST file, scanning every
//! API key) inside async storage callbacks, without stalling the runtime that
//! openraft and the services share: on a multi-threaded runtime the worker
//! hands its other tasks to another thread first (`block_in_place`); on a
//! single-threaded runtime (the simulation) the work runs inline, so a seed
//! still fixes a simulated run.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work`, letting the runtime's other tasks go on meanwhile where it can.
pub(crate) fn off_runtime<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    const WORK: Duration = Duration::from_millis(300);

    async fn ticks_during_blocking_work() -> usize {
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        // Let the ticker start before the work begins.
        tokio::task::yield_now().await;
        off_runtime(|| std::thread::sleep(WORK));
        let ticked = ticks.load(Ordering::SeqCst);
        ticker.abort();
        ticked
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn blocking_work_leaves_the_only_worker_to_other_tasks() {
        // Spawned, so it runs on the runtime's one worker (a test's own body does not).
        let ticked = tokio::spawn(ticks_during_blocking_work()).await.unwrap();
        assert!(
            ticked >= 10,
            "other tasks ran only {ticked} ticks during {WORK:?} of blocking work"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_a_single_threaded_runtime_the_work_runs_inline() {
        assert_eq!(ticks_during_blocking_work().await, 0);
    }
}
