//! The progress line, once a second: the run's phase, the server's CPU and RSS, the load.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::stats::{self, sample_all};

/// Starts the progress task on the local set; it also keeps the peak server RSS in `peak_rss`.
pub(super) fn spawn(
    pid: Vec<u32>,
    tag: String,
    phase: Rc<RefCell<String>>,
    peak_rss: Rc<Cell<u64>>,
) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let mut last = sample_all(&pid);
        let mut t = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let s = sample_all(&pid);
            let dt = t.elapsed().as_secs_f64();
            t = Instant::now();
            peak_rss.set(peak_rss.get().max(s.rss_kb));
            eprintln!(
                "[{tag}] {} | server cpu {:.0}% rss {:.1} MB | load {}",
                phase.borrow(),
                100.0 * (s.cpu_s - last.cpu_s) / dt,
                s.rss_kb as f64 / 1024.0,
                stats::loadavg()
            );
            last = s;
        }
    })
}
