use std::collections::HashMap;

use gyre_protocol::FilterNode;

use super::{FilterError, MAX_DEPTH, MAX_NODES, TagsFilter};

fn leaf(key: &str, cmp: &str, val: &str) -> FilterNode {
    FilterNode {
        key: key.into(),
        cmp: cmp.into(),
        val: val.into(),
        ..Default::default()
    }
}

fn set(key: &str, cmp: &str, vals: &[&str]) -> FilterNode {
    FilterNode {
        key: key.into(),
        cmp: cmp.into(),
        vals: vals.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

fn op(op: &str, nodes: Vec<FilterNode>) -> FilterNode {
    FilterNode {
        op: op.into(),
        nodes,
        ..Default::default()
    }
}

fn tags(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check(tree: &FilterNode, pairs: &[(&str, &str)]) -> bool {
    TagsFilter::compile(tree)
        .map(|f| f.matches(&tags(pairs)))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn string_comparisons() {
    let t = [("ticker", "BTC-USD"), ("kind", "trade")];
    assert!(check(&leaf("ticker", "eq", "BTC-USD"), &t));
    assert!(!check(&leaf("ticker", "eq", "ETH"), &t));
    assert!(!check(&leaf("missing", "eq", "x"), &t));
    assert!(check(&leaf("ticker", "neq", "ETH"), &t));
    assert!(check(&leaf("missing", "neq", "x"), &t));
    assert!(!check(&leaf("ticker", "neq", "BTC-USD"), &t));
    assert!(check(&leaf("ticker", "sw", "BTC"), &t));
    assert!(check(&leaf("ticker", "ew", "USD"), &t));
    assert!(check(&leaf("ticker", "ct", "C-U"), &t));
    assert!(!check(&leaf("missing", "sw", "B"), &t));
    assert!(!check(&leaf("ticker", "ct", "ETH"), &t));
}

#[test]
fn sets_and_existence() {
    let t = [("kind", "trade")];
    assert!(check(&set("kind", "in", &["quote", "trade"]), &t));
    assert!(!check(&set("kind", "nin", &["quote", "trade"]), &t));
    assert!(check(&set("kind", "nin", &["quote"]), &t));
    assert!(!check(&set("missing", "in", &["quote"]), &t));
    assert!(check(&set("missing", "in", &[""]), &t));
    let ex = FilterNode {
        key: "kind".into(),
        cmp: "ex".into(),
        ..Default::default()
    };
    assert!(check(&ex, &t));
    assert!(!check(&ex, &[]));
    let nex = FilterNode {
        key: "kind".into(),
        cmp: "nex".into(),
        ..Default::default()
    };
    assert!(!check(&nex, &t));
    assert!(check(&nex, &[]));
}

#[test]
fn decimal_comparisons() {
    let t = [("price", "100.50"), ("neg", "-2"), ("text", "abc")];
    assert!(check(&leaf("price", "gt", "100.4"), &t));
    assert!(check(&leaf("price", "gt", "99"), &t));
    assert!(!check(&leaf("price", "gt", "100.5"), &t));
    assert!(check(&leaf("price", "gte", "100.5"), &t));
    assert!(check(&leaf("price", "lte", "0100.500"), &t));
    assert!(check(&leaf("price", "lt", "1000"), &t));
    assert!(!check(&leaf("price", "lt", "-1000"), &t));
    assert!(check(&leaf("neg", "lt", "-1.5"), &t));
    assert!(check(&leaf("neg", "gt", "-10"), &t));
    assert!(check(&leaf("neg", "lt", "0"), &t));
    assert!(check(&leaf("neg", "gte", "-2.0"), &t));
    assert!(!check(&leaf("text", "gt", "0"), &t));
    assert!(!check(&leaf("text", "lt", "0"), &t));
    assert!(!check(&leaf("price", "gt", "abc"), &t));
    assert!(!check(&leaf("missing", "lt", "1"), &t));
    assert!(check(&leaf("zero", "gte", "-0"), &[("zero", "0.0")]));
    assert!(check(&leaf("small", "lt", "0.5"), &[("small", ".05")]));
    assert!(check(
        &leaf("big", "gt", "999999999999999999999999"),
        &[("big", "1000000000000000000000000")]
    ));
}

#[test]
fn logic() {
    let t = [("kind", "trade"), ("price", "5")];
    let both = op(
        "and",
        vec![leaf("kind", "eq", "trade"), leaf("price", "gt", "3")],
    );
    assert!(check(&both, &t));
    let one = op(
        "and",
        vec![leaf("kind", "eq", "trade"), leaf("price", "gt", "9")],
    );
    assert!(!check(&one, &t));
    let either = op(
        "or",
        vec![leaf("kind", "eq", "quote"), leaf("price", "gt", "3")],
    );
    assert!(check(&either, &t));
    let neither = op(
        "or",
        vec![leaf("kind", "eq", "quote"), leaf("price", "gt", "9")],
    );
    assert!(!check(&neither, &t));
    assert!(check(&op("not", vec![neither]), &t));
    assert!(!check(&op("not", vec![both]), &t));
}

#[test]
fn bad_trees_are_refused() {
    let bad = |tree: FilterNode| TagsFilter::compile(&tree).unwrap_err();
    assert!(matches!(
        bad(op("xor", vec![leaf("a", "eq", "1")])),
        FilterError::UnknownOp(_)
    ));
    assert!(matches!(
        bad(leaf("a", "like", "1")),
        FilterError::UnknownCmp(_)
    ));
    assert!(matches!(
        bad(leaf("a", "", "1")),
        FilterError::UnknownCmp(_)
    ));
    assert!(matches!(
        bad(leaf("a", "eq", "")),
        FilterError::Operands(..)
    ));
    assert!(matches!(
        bad(set("a", "in", &[])),
        FilterError::Operands(..)
    ));
    let mut both = set("a", "in", &["1"]);
    both.val = "1".into();
    assert!(matches!(bad(both), FilterError::Operands(..)));
    let mut eq_vals = leaf("a", "eq", "1");
    eq_vals.vals = vec!["2".into()];
    assert!(matches!(bad(eq_vals), FilterError::Operands(..)));
    assert!(matches!(
        bad(leaf("a", "ex", "1")),
        FilterError::Operands(..)
    ));
    assert!(matches!(
        bad(leaf("", "eq", "1")),
        FilterError::MissingKey(_)
    ));
    assert!(matches!(bad(op("and", vec![])), FilterError::Children(_)));
    assert!(matches!(bad(op("or", vec![])), FilterError::Children(_)));
    assert!(matches!(bad(op("not", vec![])), FilterError::Children(_)));
    let two = vec![leaf("a", "eq", "1"), leaf("b", "eq", "2")];
    assert!(matches!(bad(op("not", two)), FilterError::Children(_)));
    // A bad leaf deep inside.
    let nested = op(
        "and",
        vec![leaf("a", "eq", "1"), op("or", vec![leaf("b", "gt", "")])],
    );
    assert!(matches!(bad(nested), FilterError::Operands(..)));
}

#[test]
fn size_limits() {
    let mut tree = leaf("a", "eq", "1");
    for _ in 1..MAX_DEPTH {
        tree = op("not", vec![tree]);
    }
    assert!(TagsFilter::compile(&tree).is_ok());
    let deeper = op("not", vec![tree]);
    assert_eq!(
        TagsFilter::compile(&deeper).unwrap_err(),
        FilterError::TooDeep
    );
    let wide = op(
        "or",
        (0..MAX_NODES - 1).map(|_| leaf("a", "eq", "1")).collect(),
    );
    assert!(TagsFilter::compile(&wide).is_ok());
    let wider = op("or", (0..MAX_NODES).map(|_| leaf("a", "eq", "1")).collect());
    assert_eq!(
        TagsFilter::compile(&wider).unwrap_err(),
        FilterError::TooLarge
    );
}

#[test]
fn identical_filters_are_shared_and_evaluated_once() {
    use std::sync::Arc;

    use super::{FilterInterner, Verdicts};

    let filters = FilterInterner::default();
    let tree = op("or", vec![leaf("a", "eq", "1"), leaf("b", "gt", "2")]);
    let one = filters.intern(&tree).expect("valid");
    let two = filters.intern(&tree.clone()).expect("valid");
    assert!(Arc::ptr_eq(&one, &two));
    let other = filters.intern(&leaf("a", "eq", "2")).expect("valid");
    assert!(!Arc::ptr_eq(&one, &other));
    assert_eq!(filters.live(), 2);
    assert!(filters.intern(&leaf("a", "eq", "")).is_err());
    let mut verdicts = Verdicts::default();
    let t = tags(&[("a", "1")]);
    assert!(verdicts.passes(&one, &t));
    assert!(verdicts.passes(&two, &t));
    assert!(!verdicts.passes(&other, &t));
    drop((one, two));
    assert_eq!(filters.live(), 1);
    // A tree interned again after its last subscriber left is compiled afresh.
    let again = filters.intern(&tree).expect("valid");
    assert!(again.matches(&t));
    assert_eq!(filters.live(), 2);
}
