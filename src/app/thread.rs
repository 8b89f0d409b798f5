//! A named worker thread (the rerun pattern): commands in over a bounded channel, events out,
//! a repaint for every event (paced while events stream: see [`RepaintPace`]), and an
//! `AtomicBool` that a newer command (or Cancel) sets to stop the work in progress between steps.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{DiffError, Result};

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
enum Repaint {
    /// At once.
    Now,
    /// After this long (the next free slot).
    After(Duration),
    /// A repaint is already scheduled that will show it.
    Scheduled,
}

/// Spaces the repaints that a worker's events ask for at least `every` apart.
#[derive(Debug)]
struct RepaintPacer {
    /// The shortest time between two repaints.
    every: Duration,
    /// The earliest time of the next repaint slot.
    next_slot: Option<Instant>,
    /// A deferred repaint already asked for, and when it happens.
    pending: Option<Instant>,
}

impl RepaintPacer {
    fn new(pace: RepaintPace) -> Self {
        Self {
            every: pace.every(),
            next_slot: None,
            pending: None,
        }
    }

    fn on_event(&mut self, now: Instant) -> Repaint {
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
}

/// What a worker thread does with its commands.
pub trait Job: Send + 'static {
    /// Commands from the UI.
    type Command: Send + 'static;
    /// Events back to the UI.
    type Event: Send + 'static;

    /// Whether `cmd` may be skipped when a newer command is already queued (a stale view
    /// update may be; an export may not).
    fn supersedable(cmd: &Self::Command) -> bool;

    /// Whether sending `cmd` stops the command in progress (and lets it supersede queued ones).
    /// A new run does; a file export does not: it waits its turn, and the run goes on.
    fn cancels_running(_cmd: &Self::Command) -> bool {
        true
    }

    /// Runs one command. `cancel` turns true when the UI wants it stopped.
    fn handle(&mut self, cmd: Self::Command, cancel: &AtomicBool, send: &dyn Fn(Self::Event));
}

/// The UI's handle on a worker thread.
pub struct WorkerThread<J: Job> {
    tx: Option<SyncSender<J::Command>>,
    rx: Receiver<J::Event>,
    cancel: Arc<AtomicBool>,
    in_flight: Arc<Mutex<usize>>,
    thread: Option<JoinHandle<()>>,
}

impl<J: Job> WorkerThread<J> {
    /// Starts the thread `name` running `job`, its streaming events repainting `ctx` at `pace`.
    pub fn spawn(name: &str, mut job: J, ctx: egui::Context, pace: RepaintPace) -> Result<Self> {
        let (tx, cmd_rx) = mpsc::sync_channel::<J::Command>(4);
        let (event_tx, rx) = mpsc::channel::<J::Event>();
        let cancel = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(Mutex::new(0usize));
        let (cancel2, in_flight2) = (cancel.clone(), in_flight.clone());
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // A repaint at once for an event after a quiet spell (a view the user is
                // waiting for); while events stream (a run's steps), one repaint per
                // `pace.every()`: each repaint draws the whole window, which on a software
                // renderer takes CPU time the run itself needs.
                let pacer = RefCell::new(RepaintPacer::new(pace));
                let send = move |e: J::Event| {
                    let _ = event_tx.send(e);
                    match pacer.borrow_mut().on_event(Instant::now()) {
                        Repaint::Now => ctx.request_repaint(),
                        Repaint::After(d) => ctx.request_repaint_after(d),
                        Repaint::Scheduled => {}
                    }
                };
                while let Ok(first) = cmd_rx.recv() {
                    let mut queued = vec![first];
                    while let Ok(next) = cmd_rx.try_recv() {
                        queued.push(next);
                    }
                    let taken = queued.len();
                    // A command is skipped when any later one replaces it (a newer run); an
                    // export is never skipped and replaces nothing.
                    let replaced: Vec<bool> = (0..taken)
                        .map(|i| {
                            J::supersedable(&queued[i])
                                && queued[i + 1..].iter().any(J::cancels_running)
                        })
                        .collect();
                    for (cmd, skip) in queued.into_iter().zip(replaced) {
                        if !skip {
                            cancel2.store(false, Ordering::Relaxed);
                            job.handle(cmd, &cancel2, &send);
                        }
                    }
                    if let Ok(mut n) = in_flight2.lock() {
                        *n = n.saturating_sub(taken);
                    }
                }
            })
            .map_err(|e| DiffError::Backend(format!("cannot start the thread {name}: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            rx,
            cancel,
            in_flight,
            thread: Some(thread),
        })
    }

    /// Queues a command and, when it [`Job::cancels_running`], stops the work in progress.
    /// Returns the command back when the queue is full (the caller retries on a later frame).
    pub fn send(&self, cmd: J::Command) -> std::result::Result<(), J::Command> {
        let Some(tx) = &self.tx else {
            return Err(cmd);
        };
        if J::cancels_running(&cmd) {
            self.cancel();
        }
        if let Ok(mut n) = self.in_flight.lock() {
            *n += 1;
        }
        match tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(cmd) | TrySendError::Disconnected(cmd)) => {
                if let Ok(mut n) = self.in_flight.lock() {
                    *n = n.saturating_sub(1);
                }
                Err(cmd)
            }
        }
    }

    /// Stops the work in progress (between steps).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Events that arrived since the last call.
    pub fn poll(&self) -> Vec<J::Event> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(e) => out.push(e),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return out,
            }
        }
    }

    /// Whether commands are queued or running.
    pub fn is_busy(&self) -> bool {
        self.in_flight.lock().is_ok_and(|n| *n > 0)
    }
}

impl<J: Job> Drop for WorkerThread<J> {
    fn drop(&mut self) {
        self.cancel();
        self.tx = None; // closes the channel; the thread ends after its current command
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
}
