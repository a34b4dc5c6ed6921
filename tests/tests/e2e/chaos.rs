//! The fault suite at its reduced size: the same scenarios and figures as `make chaos`,
//! on an emulator of the suite's own (it freezes that emulator, never the shared one).

use cxbridge_e2e::chaos::{self, Setup, Size};

#[tokio::test(flavor = "multi_thread")]
async fn the_fault_suite_loses_duplicates_and_leaks_nothing_and_refuses_bad_input_with_4xx() {
    let root = cxbridge_e2e::project_root();
    let setup = Setup {
        bin_dir: cxbridge_e2e::bin_dir(),
        moto_server: root.join(".venv/moto/bin/moto_server"),
        root,
    };
    let report = chaos::run(&setup, Size::SMALL).await;
    let table = report.table();
    assert!(
        report.unfinished.is_empty(),
        "unfinished scenarios:\n{table}"
    );
    assert_eq!(report.lost(), 0, "lost:\n{table}");
    assert_eq!(report.duplicated(), 0, "duplicated:\n{table}");
    assert_eq!(report.wrong(), 0, "wrong answers:\n{table}");
    assert_eq!(report.leaks, 0, "leaks:\n{table}");
    assert_eq!(report.bad_input_5xx, 0, "5xx on bad input:\n{table}");
    assert_eq!(report.bad_input_work, 0, "work for bad input:\n{table}");
    assert_eq!(report.crashes, 0, "crashes:\n{table}");
    // Every scenario ran, and each sent something.
    assert_eq!(report.rows.len(), 9, "{table}");
    assert!(report.rows.iter().all(|r| r.sent > 0), "{table}");
}
