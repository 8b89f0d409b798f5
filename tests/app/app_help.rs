//! The Help menu, clicked by label: About, the guide's pages (built in, links between pages
//! open in the window), the keyboard shortcuts, F1.

use difflab::app::help::{GUIDE, HelpPage, PageGroup, page_group, page_title};
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;

use crate::common::app::{cpu_harness, settle};

#[test]
fn help_menu_opens_about_the_shortcuts_and_the_guide() {
    let mut h = cpu_harness();
    settle(&mut h, 15);

    h.get_by_label("Help").click();
    h.run();
    h.get_by_label("About difflab").click();
    h.run();
    assert_eq!(h.state().help.open, Some(HelpPage::About));
    h.get_by_label(&format!("difflab {}", env!("CARGO_PKG_VERSION")));
    h.get_by_label_contains("difflab: MIT or Apache-2.0");
    h.get_by_label_contains("Settings: ");
    h.get_by_label_contains("CC BY-SA 3.0");

    h.get_by_label("Help").click();
    h.run();
    h.get_by_label("Keyboard shortcuts").click();
    h.run();
    assert_eq!(h.state().help.open, Some(HelpPage::Shortcuts));
    h.get_by_label("F5");
    h.get_by_label_contains("presenter mode");

    // F1: the guide's contents; a link to another page opens it in the same window.
    h.state_mut().help.open = None;
    h.run();
    h.key_press(egui::Key::F1);
    h.run();
    assert_eq!(h.state().help.open, Some(HelpPage::Guide(0)));
    let sampling = GUIDE
        .iter()
        .position(|(n, _)| *n == "panel-sampling.md")
        .unwrap();
    let index = GUIDE[0].1;
    // The index's link text for the Sampling page, as the guide writes it.
    let link = index
        .lines()
        .find_map(|l| {
            let end = l.find("](panel-sampling.md)")?;
            let start = l[..end].rfind('[')?;
            Some(l[start + 1..end].to_string())
        })
        .expect("the guide's index links the Sampling page");
    h.get_by_role_and_label(Role::Link, &link).click();
    h.run();
    h.run();
    assert_eq!(h.state().help.open, Some(HelpPage::Guide(sampling)));
    h.get_by_label(&format!("Guide: {}", page_title(GUIDE[sampling].1)));
    h.get_by_label("Guide contents").click();
    h.run();
    assert_eq!(h.state().help.open, Some(HelpPage::Guide(0)));
}

/// Every guide page opens from the menu and draws text (no page is empty or fails to parse).
#[test]
fn every_guide_page_opens_from_the_menu() {
    let mut h = cpu_harness();
    settle(&mut h, 15);
    for (i, (name, body)) in GUIDE.iter().enumerate().skip(1) {
        // (Page 0, the contents, is "User guide (F1)": the other test.)
        // Closed first: the open page's heading would be a second label with the title.
        h.state_mut().help.open = None;
        h.run();
        h.get_by_label("Help").click();
        h.run();
        let group = match page_group(name) {
            PageGroup::App => "Using the app",
            PageGroup::Cli => "Commands (difflab …)",
            PageGroup::Project => "Models, tests, benchmarks",
        };
        h.get_by_label(group).hover();
        h.run();
        h.get_by_label(&page_title(body)).click();
        h.run();
        assert_eq!(h.state().help.open, Some(HelpPage::Guide(i)), "{name}");
        h.get_by_label(&format!("Guide: {}", page_title(body)));
    }
}
