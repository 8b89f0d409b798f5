//! Version 1 of the persisted settings (one flat struct) and its migration to today's
//! per-panel settings. Session files and app state in this format still open.

use serde::{Deserialize, Serialize};

use super::sampler::{GuidanceSettings, ModelSpec, SamplerSettings};
use super::{
    ForwardSettings, GifSettings, ImageSource, InterpSettings, LessonSettings, SETTINGS_VERSION,
    SamplingSettings, ScheduleViewSettings, Settings, Tab, ToySettings,
};
use crate::device::DeviceChoice;
use crate::diffusion::{ScheduleConfig, TimestepSpacing};

/// Version 1 of the settings (difflab up to 2026-11-26): one flat struct. Files in this format
/// (sessions, the app's state) are read into it and converted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)] // The fields are those of `Settings` and its groups, under their v1 names.
pub struct SettingsV1 {
    pub tab: Tab,
    pub dark_mode: bool,
    pub device: DeviceChoice,
    pub schedule: ScheduleConfig,
    pub compare_enabled: bool,
    pub compare_schedule: ScheduleConfig,
    pub t: usize,
    pub seed: u64,
    pub filmstrip_frames: usize,
    pub working_size: u32,
    pub source: ImageSource,
    pub play_speed: f32,
    pub sampler_steps: usize,
    pub spacing: TimestepSpacing,
    pub sampler: SamplerSettings,
    pub model: ModelSpec,
    pub sample_seed: u64,
    pub batch: usize,
    pub guidance: GuidanceSettings,
    pub compare: [SamplerSettings; 2],
    pub interp: InterpSettings,
    pub gif: GifSettings,
    pub toy: ToySettings,
}

impl From<SettingsV1> for Settings {
    fn from(v: SettingsV1) -> Self {
        Self {
            version: SETTINGS_VERSION,
            tab: v.tab,
            dark_mode: v.dark_mode,
            device: v.device,
            schedule: v.schedule,
            t: v.t,
            forward: ForwardSettings {
                seed: v.seed,
                filmstrip_frames: v.filmstrip_frames,
                working_size: v.working_size,
                source: v.source,
                play_speed: v.play_speed,
            },
            schedule_view: ScheduleViewSettings {
                compare_enabled: v.compare_enabled,
                compare_schedule: v.compare_schedule,
                sampler_steps: v.sampler_steps,
                spacing: v.spacing,
                ..ScheduleViewSettings::default()
            },
            sampling: SamplingSettings {
                sampler: v.sampler,
                model: v.model,
                seed: v.sample_seed,
                batch: v.batch,
                guidance: v.guidance,
            },
            compare: v.compare,
            compare_models: [None, None],
            interp: v.interp,
            gif: v.gif,
            toy: v.toy,
            lessons: LessonSettings::default(),
            edit: super::EditSettings::default(),
            unet_weights: None,
        }
    }
}

impl Default for SettingsV1 {
    /// v1's defaults, which are today's.
    fn default() -> Self {
        let s = Settings::default();
        Self {
            tab: s.tab,
            dark_mode: s.dark_mode,
            device: s.device,
            schedule: s.schedule,
            compare_enabled: s.schedule_view.compare_enabled,
            compare_schedule: s.schedule_view.compare_schedule,
            t: s.t,
            seed: s.forward.seed,
            filmstrip_frames: s.forward.filmstrip_frames,
            working_size: s.forward.working_size,
            source: s.forward.source,
            play_speed: s.forward.play_speed,
            sampler_steps: s.schedule_view.sampler_steps,
            spacing: s.schedule_view.spacing,
            sampler: s.sampling.sampler,
            model: s.sampling.model,
            sample_seed: s.sampling.seed,
            batch: s.sampling.batch,
            guidance: s.sampling.guidance,
            compare: s.compare,
            interp: s.interp,
            gif: s.gif,
            toy: s.toy,
        }
    }
}
