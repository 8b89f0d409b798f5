//! The app's jobs: the work that runs off the UI thread on the desktop (a worker thread per
//! kind) and on the page's frame loop in the browser, one step per poll. What a panel asks for
//! (the requests, each with an id), what comes back (the events), and the job code itself.

pub(super) mod compare_kind;
pub(super) mod guided_views;
pub(super) mod job_requests;
pub(super) mod pieces;
pub(super) mod repaint;
pub(super) mod sampler;
pub(super) mod sampler_job;
pub(super) mod stepped;
pub(super) mod thread;
pub(super) mod toy_job;
#[cfg(target_arch = "wasm32")]
pub(super) mod web_models;
pub(super) mod worker;
