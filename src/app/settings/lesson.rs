//! The lessons panel's persisted settings and the lessons' languages: data the settings hold,
//! kept here so that the settings import no panel.

use serde::{Deserialize, Serialize};

/// The lessons panel's persisted settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LessonSettings {
    /// The lesson open (0-based).
    pub current: usize,
    /// Presenter mode: the whole UI at 1.75×, for a class (F5).
    pub presenter: bool,
    /// The lessons' language; `None` follows the system's locale.
    pub language: Option<Lang>,
    /// Keep the open lesson in a side panel beside the other panels.
    pub beside: bool,
}

impl LessonSettings {
    /// The language the lessons are shown in.
    pub fn lang(&self) -> Lang {
        self.language.unwrap_or_else(system_lang)
    }
}

/// The system's language, read once.
fn system_lang() -> Lang {
    static LANG: std::sync::OnceLock<Lang> = std::sync::OnceLock::new();
    *LANG.get_or_init(Lang::system)
}

/// The languages of the lessons.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// Both, in the order the switch lists them.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    /// Its name, in itself.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "简体中文",
        }
    }

    /// Its folder under assets/lessons.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The language of a POSIX locale name (`zh_CN.UTF-8`, `zh_SG`, `zh-Hans`): Chinese for
    /// any `zh`, English otherwise.
    pub fn from_locale(locale: &str) -> Lang {
        let lang = locale
            .split(['_', '-', '.', '@'])
            .next()
            .unwrap_or_default();
        if lang.eq_ignore_ascii_case("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// The system's language, from the first of LC_ALL, LC_MESSAGES and LANG that is set (as
    /// POSIX orders them); English when none is.
    pub fn system() -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|v| !v.is_empty())
            .map_or(Lang::En, |v| Lang::from_locale(&v))
    }
}
