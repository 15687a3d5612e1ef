//! A few workers over a list: for layers unpacked or uploaded at once.

use anyhow::{Result, anyhow};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `work` on every item, `threads` at a time, results in the items' order.
/// After the first failure no new item starts; that failure is the answer.
pub fn try_map<I: Sync, T: Send>(
    items: &[I],
    threads: usize,
    work: impl Fn(&I) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let failed = || first_error.lock().map(|e| e.is_some()).unwrap_or(true);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(items.len()).max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if failed() {
                        break;
                    }
                    match work(item) {
                        Ok(v) => {
                            if let Ok(mut r) = results.lock() {
                                r[i] = Some(v);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    results
        .into_inner()
        .map_err(|_| anyhow!("a worker thread panicked"))?
        .into_iter()
        .map(|r| r.ok_or_else(|| anyhow!("a worker thread panicked")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::try_map;

    #[test]
    fn results_keep_their_order_and_the_first_error_stops_new_work() {
        let items: Vec<u32> = (0..50).collect();
        assert_eq!(
            try_map(&items, 4, |i| Ok(i * 2)).unwrap(),
            (0..50).map(|i| i * 2).collect::<Vec<_>>()
        );
        let started = std::sync::atomic::AtomicUsize::new(0);
        let err = try_map(&items, 1, |i| {
            started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if *i == 3 {
                anyhow::bail!("item 3 failed")
            }
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "item 3 failed");
        assert_eq!(started.load(std::sync::atomic::Ordering::Relaxed), 4);
        assert!(try_map(&[] as &[u32], 3, |_| Ok(())).unwrap().is_empty());
    }
}
