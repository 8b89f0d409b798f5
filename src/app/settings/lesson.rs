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
    /// POSIX orders them), else the desktop's own setting (Windows: the user's locale; macOS:
    /// the first preferred language; an app opened from the Finder or the Start menu has no
    /// LANG); English when none is known.
    pub fn system() -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|v| !v.is_empty())
            .or_else(desktop_locale)
            .map_or(Lang::En, |v| Lang::from_locale(&v))
    }
}

/// Windows: the user's default locale name ("zh-CN", "en-GB").
#[cfg(windows)]
fn desktop_locale() -> Option<String> {
    use windows_sys::Win32::Globalization::GetUserDefaultLocaleName;
    let mut buf = [0u16; 85]; // LOCALE_NAME_MAX_LENGTH
    // SAFETY: the buffer and its length in UTF-16 units are passed together.
    let len = unsafe { GetUserDefaultLocaleName(buf.as_mut_ptr(), buf.len() as i32) };
    (len > 1).then(|| String::from_utf16_lossy(&buf[..len as usize - 1]))
}

/// macOS: the first of the user's preferred languages ("zh-Hans-CN", "en-GB"), as
/// `defaults read -g AppleLanguages` prints them.
#[cfg(target_os = "macos")]
fn desktop_locale() -> Option<String> {
    let out = std::process::Command::new("/usr/bin/defaults")
        .args(["read", "-g", "AppleLanguages"])
        .output()
        .ok()?;
    first_apple_language(&String::from_utf8_lossy(&out.stdout))
}

/// The first quoted or bare entry of a `defaults` array: `(\n    "zh-Hans-CN",\n    en\n)`.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn first_apple_language(text: &str) -> Option<String> {
    text.lines()
        .map(|l| l.trim().trim_end_matches(',').trim_matches('"'))
        .find(|l| !l.is_empty() && *l != "(" && *l != ")")
        .map(str::to_string)
}

#[cfg(not(any(windows, target_os = "macos")))]
fn desktop_locale() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_locales_pick_the_language() {
        let apple = "(\n    \"zh-Hans-CN\",\n    \"en-GB\"\n)\n";
        assert_eq!(first_apple_language(apple).as_deref(), Some("zh-Hans-CN"));
        assert_eq!(first_apple_language("(\n    en\n)").as_deref(), Some("en"));
        assert_eq!(first_apple_language("(\n)"), None);
        assert_eq!(Lang::from_locale("zh-Hans-CN"), Lang::Zh);
        assert_eq!(Lang::from_locale("zh-CN"), Lang::Zh);
        assert_eq!(Lang::from_locale("en-GB"), Lang::En);
    }
}
