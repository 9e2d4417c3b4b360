//! The static inventory loader (`--inventory`): any bytes as a JSON or YAML file of Kubernetes objects.
//!
//! The first byte picks the format (even: YAML, odd: JSON; the extension a file would have), the rest is
//! the file. Parsing never panics, counts what it could not use, keeps at most its 20 problems word for
//! word, and every object it returns can be indexed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podflow_collector::k8s::IndexSettings;
use podflow_collector::k8s::inventory::{Inventory, InventoryReport, parse_bytes};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let json = match pick % 3 {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    };
    let mut report = InventoryReport::default();
    let objects = parse_bytes(file, json, "fuzz", &mut report);
    assert!(report.problems.len() <= 20);
    assert!(report.problems.len() <= report.bad);
    let n = objects.len();
    let inventory = Inventory::from_objects(objects, IndexSettings::default(), 0, report);
    assert_eq!(inventory.report().objects, n);
});
