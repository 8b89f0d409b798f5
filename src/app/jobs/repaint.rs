//! How often a worker's events repaint the window: at once after a quiet spell, then at most
//! once per slot while a run streams (slower on a software renderer); [`paced_send`] is the
//! event sender that applies it.

use std::cell::RefCell;
use std::sync::mpsc;
use std::time::Duration;

use web_time::Instant;

/// How often a worker's streaming events (a run's steps) may repaint the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepaintPace {
    /// A GPU draws the window: a repaint costs the run nothing, so ten a second.
    Hardware,
    /// A software renderer (lavapipe, on a machine without a usable GPU) draws it on the CPU
    /// the run computes on: about 90 ms of CPU per repaint of the whole window on a 2-core
    /// Zen 4, an estimated 150–200 ms on a 2-core first-generation Zen, so ten a second took
    /// more than a core from the run. Twice a second still shows a run moving (and every step
    /// can be scrubbed afterwards): on the Zen 1, a guided DDIM-50 of 16 digits took 3.4–3.8 s
    /// in the app at this pace, against 3.9–5.0 s at four a second, 4.0–6.3 s at ten, and
    /// 2.05 s in the CLI (README, "The shipped U-Net").
    Software,
}

impl RepaintPace {
    /// The shortest time between two repaints that a worker's events ask for while they stream.
    pub fn every(self) -> Duration {
        match self {
            Self::Hardware => Duration::from_millis(100),
            Self::Software => Duration::from_millis(500),
        }
    }
}

/// When to repaint for a worker's event.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::app) enum Repaint {
    /// At once.
    Now,
    /// After this long (the next free slot).
    After(Duration),
    /// A repaint is already scheduled that will show it.
    Scheduled,
}

/// Spaces the repaints that a worker's events ask for at least `every` apart.
#[derive(Debug)]
pub(in crate::app) struct RepaintPacer {
    /// The shortest time between two repaints.
    every: Duration,
    /// The earliest time of the next repaint slot.
    next_slot: Option<Instant>,
    /// A deferred repaint already asked for, and when it happens.
    pending: Option<Instant>,
}

impl RepaintPacer {
    pub(in crate::app) fn new(pace: RepaintPace) -> Self {
        Self {
            every: pace.every(),
            next_slot: None,
            pending: None,
        }
    }

    pub(in crate::app) fn on_event(&mut self, now: Instant) -> Repaint {
        if self.pending.is_some_and(|p| now < p) {
            return Repaint::Scheduled;
        }
        self.pending = None;
        match self.next_slot {
            Some(slot) if now < slot => {
                self.pending = Some(slot);
                self.next_slot = Some(slot + self.every);
                Repaint::After(slot - now)
            }
            _ => {
                self.next_slot = Some(now + self.every);
                Repaint::Now
            }
        }
    }

    /// A batch of commands has ended: whether a repaint held back for a later slot should
    /// happen now instead (nothing more is coming to wait for). The next event after it starts
    /// a slot of its own.
    pub(in crate::app) fn on_batch_end(&mut self, now: Instant) -> bool {
        let held = self.pending.take().is_some_and(|p| now < p);
        if held {
            self.next_slot = Some(now + self.every);
        }
        held
    }
}

/// The event sender a job's loop uses: each event repaints `ctx` (paced by `pace`), and the
/// second closure, called when a batch of commands has ended, shows at once what a paced
/// repaint was still holding back (the run's last step, its result).
pub(super) fn paced_send<E>(
    event_tx: mpsc::Sender<E>,
    ctx: egui::Context,
    pace: Option<RepaintPace>,
) -> (impl Fn(E), impl Fn()) {
    let pacer = std::rc::Rc::new(pace.map(|p| RefCell::new(RepaintPacer::new(p))));
    // egui draws two frames for a repaint asked for with no delay ("to let things settle"): in
    // the page, where each frame is drawing alone, one is enough to show a job's event.
    let at_once = if cfg!(target_arch = "wasm32") {
        Duration::from_millis(1)
    } else {
        Duration::ZERO
    };
    let (pacer2, ctx2) = (pacer.clone(), ctx.clone());
    let send = move |e: E| {
        let _ = event_tx.send(e);
        match pacer
            .as_ref()
            .as_ref()
            .map(|p| p.borrow_mut().on_event(Instant::now()))
        {
            None | Some(Repaint::Now) => ctx.request_repaint_after(at_once),
            Some(Repaint::After(d)) => ctx.request_repaint_after(d),
            Some(Repaint::Scheduled) => {}
        }
    };
    let done = move || {
        if let Some(p) = pacer2.as_ref()
            && p.borrow_mut().on_batch_end(Instant::now())
        {
            ctx2.request_repaint_after(at_once);
        }
    };
    (send, done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_events_repaint_at_most_once_per_slot() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut p = RepaintPacer::new(RepaintPace::Hardware);
        // A lone event: at once.
        assert_eq!(p.on_event(ms(0)), Repaint::Now);
        // Events 36 ms apart (a run's steps): the next slot at 100 ms, then nothing new until
        // it has happened, then the slot after it at 200 ms.
        assert_eq!(
            p.on_event(ms(36)),
            Repaint::After(Duration::from_millis(64))
        );
        assert_eq!(p.on_event(ms(72)), Repaint::Scheduled);
        assert_eq!(
            p.on_event(ms(108)),
            Repaint::After(Duration::from_millis(92))
        );
        assert_eq!(p.on_event(ms(144)), Repaint::Scheduled);
        assert_eq!(p.on_event(ms(180)), Repaint::Scheduled);
        assert_eq!(
            p.on_event(ms(216)),
            Repaint::After(Duration::from_millis(84))
        );
        // After a quiet spell: at once again.
        assert_eq!(p.on_event(ms(1000)), Repaint::Now);
    }

    #[test]
    fn a_software_renderer_repaints_twice_a_second_while_events_stream() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut p = RepaintPacer::new(RepaintPace::Software);
        assert_eq!(p.on_event(ms(0)), Repaint::Now);
        // Events every 20 ms until 980 ms (a DDIM-50 run's steps): repaints at 500 and 1000 ms.
        let mut repaints = Vec::new();
        for step in 1..=49 {
            match p.on_event(ms(20 * step)) {
                Repaint::After(d) => repaints.push(20 * step + d.as_millis() as u64),
                Repaint::Now => repaints.push(20 * step),
                Repaint::Scheduled => {}
            }
        }
        assert_eq!(repaints, vec![500, 1000]);
    }

    #[test]
    fn a_batch_that_ends_before_its_slot_shows_at_once() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut p = RepaintPacer::new(RepaintPace::Software);
        assert_eq!(p.on_event(ms(0)), Repaint::Now);
        // The run's steps at 300 and 400 ms wait for the slot at 500 ms ...
        assert_eq!(
            p.on_event(ms(300)),
            Repaint::After(Duration::from_millis(200))
        );
        assert_eq!(p.on_event(ms(400)), Repaint::Scheduled);
        // ... until the run ends at 410 ms: then they are shown at once, and a new run's first
        // event waits for the slot after that repaint.
        assert!(p.on_batch_end(ms(410)));
        assert_eq!(
            p.on_event(ms(450)),
            Repaint::After(Duration::from_millis(460))
        );
        // Nothing held back (the last repaint already happened): nothing to do.
        let mut q = RepaintPacer::new(RepaintPace::Software);
        assert_eq!(q.on_event(ms(0)), Repaint::Now);
        assert!(!q.on_batch_end(ms(10)));
        assert!(!q.on_batch_end(ms(2000)));
    }
}
