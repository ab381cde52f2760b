//! Case 5: serde_json's parse and re-serialisation of a generated document.

use super::{global_allocator_ms, Plan, Table};
use crate::contenders::Contender;
use crate::measure;

/// A JSON document of about `target` bytes, the same on every run: an array
/// of records with strings, numbers, nested arrays and objects.
pub fn json_document(target: usize) -> String {
    let mut random = measure::SplitMix64(0x5eed);
    let mut out = String::with_capacity(target + 1024);
    out.push('[');
    let mut id = 0u64;
    while out.len() < target {
        if id > 0 {
            out.push(',');
        }
        let r = random.next();
        out.push_str(&format!(
            "{{\"id\":{id},\"name\":\"user-{:08x}\",\"email\":\"u{}@example.org\",\"score\":{:.4},\
             \"active\":{},\"tags\":[\"t{}\",\"t{}\",\"t{}\"],\"history\":[{},{},{},{},{}],\
             \"address\":{{\"city\":\"city-{}\",\"zip\":\"{:05}\"}}}}",
            r as u32,
            r % 100_000,
            (r % 10_000) as f64 / 7.0,
            r.is_multiple_of(2),
            r % 13,
            r % 17,
            r % 19,
            r % 1000,
            (r >> 10) % 1000,
            (r >> 20) % 1000,
            (r >> 30) % 1000,
            (r >> 40) % 1000,
            r % 500,
            r % 100_000,
        ));
        id += 1;
    }
    out.push(']');
    out
}

/// Case 5: parse a generated JSON document into `serde_json::Value` and write
/// it out again, with the GIL held.
pub fn json(plan: Plan) -> Table {
    use Contender::*;
    let columns = [PyAlloc, PyMemDirect, Naive, System, Mimalloc];
    let size = if plan.quick { 1 << 20 } else { 20_000_000 };
    let document = json_document(size);
    let mut table = Table::new(
        "json",
        format!(
            "5. serde_json: parse and re-serialise a {:.0} MB document (GIL held)",
            document.len() as f64 / 1e6
        ),
        "ms",
        System,
        &columns,
    );
    let medians = global_allocator_ms(&columns, plan.rounds(7), || {
        let value: serde_json::Value = serde_json::from_str(&document).expect("valid JSON");
        let text = serde_json::to_string(&value).expect("serialisable");
        // Floats may print shorter; the size stays within a few percent.
        assert!(
            text.len().abs_diff(document.len()) < document.len() / 20,
            "round trip keeps the text"
        );
    });
    table.push(format!("{:.0} MB", document.len() as f64 / 1e6), medians);
    table
}
