//! A worker (the rerun pattern): commands in over a bounded channel, events out, a repaint for
//! every event (paced while events stream: see [`RepaintPace`]), and an `AtomicBool` that a
//! newer command (or Cancel) sets to stop the work in progress between steps. Its job runs on a
//! named thread on the desktop, and on the frame loop, a budget of steps per frame, in the
//! browser ([`WorkerThread::on_frames`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use web_time::Instant;

pub use super::repaint::RepaintPace;
use super::repaint::paced_send;

use crate::error::{DiffError, Result};

/// What a worker does with its commands. The same job runs on a thread of its own on the
/// desktop and on the page's thread in the browser: [`Job::handle`] is a future that awaits
/// [`yield_now`] between steps (a sampler step, a filmstrip frame, a few training steps). A
/// thread drives it to the end at once; the frame loop ([`WorkerThread::pump`]) polls it until
/// its frame budget is spent and goes on next frame, so the page never freezes and Cancel
/// always answers.
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

    /// Runs one command, awaiting [`yield_now`] between its steps. `cancel` turns true when the
    /// UI wants it stopped.
    fn handle(
        &mut self,
        cmd: Self::Command,
        cancel: &AtomicBool,
        send: &dyn Fn(Self::Event),
    ) -> impl Future<Output = ()>;
}

/// A step boundary in a job: the frame loop may end its frame here and resume next frame (a
/// thread goes straight on).
pub fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

/// Runs a batch of commands taken from the queue: a command is skipped when a later one
/// replaces it (a newer run); an export is never skipped and replaces nothing.
async fn run_batch<J: Job>(
    job: &mut J,
    queued: Vec<J::Command>,
    cancel: &AtomicBool,
    in_flight: &Mutex<usize>,
    send: &dyn Fn(J::Event),
) {
    let taken = queued.len();
    let replaced: Vec<bool> = (0..taken)
        .map(|i| J::supersedable(&queued[i]) && queued[i + 1..].iter().any(J::cancels_running))
        .collect();
    for (cmd, skip) in queued.into_iter().zip(replaced) {
        if !skip {
            cancel.store(false, Ordering::Relaxed);
            job.handle(cmd, cancel, send).await;
        }
    }
    if let Ok(mut n) = in_flight.lock() {
        *n = n.saturating_sub(taken);
    }
}

/// A waker that notes being woken: a job at a step boundary ([`yield_now`]) wakes itself.
#[derive(Default)]
struct Woken(AtomicBool);

impl std::task::Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How a worker's job is driven.
enum Driver {
    /// A thread of its own (the desktop).
    Thread(JoinHandle<()>),
    /// The frame loop, by [`WorkerThread::pump`] (the browser; native tests of the web's path).
    Frame(FrameTask),
}

/// A job's whole command loop as one future, polled by the frame loop.
struct FrameTask {
    task: Option<Pin<Box<dyn Future<Output = ()>>>>,
    /// Set by the loop when it waits for a command (nothing to do until one is sent).
    idle: Arc<AtomicBool>,
    /// Whether the last pump ended because the job waits for the browser (a GPU read back).
    waiting: bool,
}

/// The UI's handle on a worker: its command queue, its events, and its driver.
pub struct WorkerThread<J: Job> {
    tx: Option<SyncSender<J::Command>>,
    rx: Receiver<J::Event>,
    cancel: Arc<AtomicBool>,
    in_flight: Arc<Mutex<usize>>,
    driver: Driver,
}

/// Where a worker's job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drive {
    /// On a thread of its own, its events repainting at this pace (the desktop).
    Thread(RepaintPace),
    /// On the frame loop, a budget of steps per frame (the browser, which has one thread), its
    /// events repainting at this pace (the page), or at every event (`None`: native tests,
    /// which pump every frame).
    Frames(Option<RepaintPace>),
}

impl<J: Job> WorkerThread<J> {
    /// Starts `job` as `drive` says (`name` names its thread).
    pub fn start(name: &str, job: J, ctx: egui::Context, drive: Drive) -> Result<Self> {
        match drive {
            Drive::Thread(pace) => Self::spawn(name, job, ctx, pace),
            Drive::Frames(pace) => Ok(Self::on_frames(job, ctx, pace)),
        }
    }

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
                let (send, done) = paced_send(event_tx, ctx, Some(pace));
                while let Ok(first) = cmd_rx.recv() {
                    let mut queued = vec![first];
                    while let Ok(next) = cmd_rx.try_recv() {
                        queued.push(next);
                    }
                    futures_lite::future::block_on(run_batch(
                        &mut job,
                        queued,
                        &cancel2,
                        &in_flight2,
                        &send,
                    ));
                    done();
                }
            })
            .map_err(|e| DiffError::Backend(format!("cannot start the thread {name}: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            rx,
            cancel,
            in_flight,
            driver: Driver::Thread(thread),
        })
    }

    /// The same job driven by the frame loop: nothing runs until [`WorkerThread::pump`] is
    /// called (each frame, with that frame's budget). The browser's way, where the page has
    /// one thread; native tests drive the web's path with it.
    pub fn on_frames(mut job: J, ctx: egui::Context, pace: Option<RepaintPace>) -> Self {
        let (tx, cmd_rx) = mpsc::sync_channel::<J::Command>(4);
        let (event_tx, rx) = mpsc::channel::<J::Event>();
        let cancel = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(Mutex::new(0usize));
        let idle = Arc::new(AtomicBool::new(false));
        let (cancel2, in_flight2, idle2) = (cancel.clone(), in_flight.clone(), idle.clone());
        let task = async move {
            let (send, done) = paced_send(event_tx, ctx, pace);
            loop {
                let first = loop {
                    match cmd_rx.try_recv() {
                        Ok(cmd) => break cmd,
                        Err(TryRecvError::Empty) => {
                            idle2.store(true, Ordering::Relaxed);
                            yield_now().await;
                        }
                        Err(TryRecvError::Disconnected) => return,
                    }
                };
                let mut queued = vec![first];
                while let Ok(next) = cmd_rx.try_recv() {
                    queued.push(next);
                }
                run_batch(&mut job, queued, &cancel2, &in_flight2, &send).await;
                done();
            }
        };
        Self {
            tx: Some(tx),
            rx,
            cancel,
            in_flight,
            driver: Driver::Frame(FrameTask {
                task: Some(Box::pin(task)),
                idle,
                waiting: false,
            }),
        }
    }

    /// Whether the frame loop drives this worker (see [`WorkerThread::on_frames`]).
    pub fn on_frame_loop(&self) -> bool {
        matches!(self.driver, Driver::Frame(_))
    }

    /// Advances a frame-driven job by steps while the next (as long as the last) fits in `budget`,
    /// or until it waits for a command;
    /// returns whether it has more to do. A thread-driven one runs by itself: `false`.
    pub fn pump(&mut self, budget: Duration) -> bool {
        let Driver::Frame(frame) = &mut self.driver else {
            return false;
        };
        let Some(task) = frame.task.as_mut() else {
            return false;
        };
        frame.waiting = false;
        let started = Instant::now();
        let woken = Arc::new(Woken::default());
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            let step_started = Instant::now();
            frame.idle.store(false, Ordering::Relaxed);
            woken.0.store(false, Ordering::Relaxed);
            if task.as_mut().poll(&mut cx).is_ready() {
                frame.task = None;
                return false;
            }
            if frame.idle.load(Ordering::Relaxed) {
                return false;
            }
            // Pending without asking to go on: the job waits for the browser (a GPU read
            // back), which answers between slices, not within one.
            if !woken.0.load(Ordering::Relaxed) {
                frame.waiting = true;
                return true;
            }
            // Another step as long as the last one would still end within the budget: a
            // step is not cut short, so one that starts near the end overruns it.
            if started.elapsed() + step_started.elapsed() > budget {
                return true;
            }
        }
    }

    /// Whether the last [`WorkerThread::pump`] ended at a wait for the browser (a GPU read).
    pub fn waits_on_browser(&self) -> bool {
        matches!(&self.driver, Driver::Frame(f) if f.waiting)
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
        if let Driver::Thread(t) = std::mem::replace(
            &mut self.driver,
            Driver::Frame(FrameTask {
                task: None,
                idle: Arc::default(),
                waiting: false,
            }),
        ) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts to `n`, one step per count, sending each; a newer command cancels it.
    struct Counter;

    impl Job for Counter {
        type Command = (u32, usize);
        type Event = (u32, usize);

        fn supersedable(_: &(u32, usize)) -> bool {
            true
        }

        async fn handle(
            &mut self,
            (id, n): (u32, usize),
            cancel: &AtomicBool,
            send: &dyn Fn((u32, usize)),
        ) {
            for k in 1..=n {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                send((id, k));
                yield_now().await;
            }
        }
    }

    #[test]
    fn the_frame_loop_runs_a_job_one_step_per_poll_and_cancel_stops_it_between_steps() {
        let mut w =
            WorkerThread::start("t", Counter, egui::Context::default(), Drive::Frames(None))
                .expect("no thread to start");
        assert!(w.on_frame_loop());
        // Nothing runs until the frame loop pumps; an idle job says it has nothing to do.
        assert!(!w.pump(Duration::ZERO));
        w.send((1, 5)).expect("queued");
        assert!(w.is_busy());
        assert!(w.poll().is_empty());
        // A zero budget is one step a frame.
        for k in 1..=3 {
            assert!(w.pump(Duration::ZERO));
            assert_eq!(w.poll(), vec![(1, k)]);
        }
        // A newer command cancels the rest between steps and runs in its place; a budget lets
        // it run to the end within one frame.
        w.send((2, 2)).expect("queued");
        assert!(!w.pump(Duration::from_secs(5)));
        assert_eq!(w.poll(), vec![(2, 1), (2, 2)]);
        assert!(!w.is_busy());
    }

    #[test]
    fn a_thread_and_the_frame_loop_send_the_same_events() {
        let thread = WorkerThread::start(
            "difflab-test-counter",
            Counter,
            egui::Context::default(),
            Drive::Thread(RepaintPace::Hardware),
        )
        .expect("the thread starts");
        assert!(!thread.on_frame_loop());
        thread.send((7, 4)).expect("queued");
        let until = Instant::now() + Duration::from_secs(10);
        while thread.is_busy() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut frames =
            WorkerThread::start("t", Counter, egui::Context::default(), Drive::Frames(None))
                .expect("no thread to start");
        frames.send((7, 4)).expect("queued");
        while frames.pump(Duration::ZERO) {}
        let want: Vec<_> = (1..=4).map(|k| (7, k)).collect();
        assert_eq!(thread.poll(), want);
        assert_eq!(frames.poll(), want);
    }

    /// Waits, at each count, for a read that the "browser" (the test) answers: a future that
    /// is pending, without waking, until `ready` is set, as a GPU read back is in the page.
    struct Reader(Arc<AtomicBool>);

    impl Job for Reader {
        type Command = usize;
        type Event = usize;

        fn supersedable(_: &usize) -> bool {
            true
        }

        async fn handle(&mut self, n: usize, _: &AtomicBool, send: &dyn Fn(usize)) {
            for k in 1..=n {
                let ready = self.0.clone();
                std::future::poll_fn(|_| {
                    if ready.swap(false, Ordering::Relaxed) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                send(k);
                yield_now().await;
            }
        }
    }

    #[test]
    fn a_job_waiting_for_the_browser_gives_the_slice_back_at_once_and_goes_on_when_answered() {
        let ready = Arc::new(AtomicBool::new(false));
        let mut w = WorkerThread::on_frames(Reader(ready.clone()), egui::Context::default(), None);
        w.send(2).expect("queued");
        // A long budget, yet the slice ends at the read, saying why: it is not back.
        assert!(w.pump(Duration::from_secs(5)));
        assert!(w.waits_on_browser());
        assert!(w.poll().is_empty());
        // Answered: the job goes on to the next read.
        ready.store(true, Ordering::Relaxed);
        assert!(w.pump(Duration::from_secs(5)));
        assert!(w.waits_on_browser());
        assert_eq!(w.poll(), vec![1]);
        ready.store(true, Ordering::Relaxed);
        assert!(!w.pump(Duration::from_secs(5)));
        assert!(!w.waits_on_browser());
        assert_eq!(w.poll(), vec![2]);
        assert!(!w.is_busy());
    }
}
