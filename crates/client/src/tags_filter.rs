//! Tags filters (Centrifugo v6.4): a subscription asks the server to deliver only the
//! publications whose tags match a filter tree. The server evaluates the filter (the channel's
//! namespace needs `allow_tags_filter`); the client only builds and sends it.
//!
//! ```
//! use gyre_client::TagsFilter;
//!
//! // ticker = "AAPL" and (exchange in [NASDAQ, NYSE] or not priority exists)
//! let filter = TagsFilter::and([
//!     TagsFilter::eq("ticker", "AAPL"),
//!     TagsFilter::or([
//!         TagsFilter::is_in("exchange", ["NASDAQ", "NYSE"]),
//!         !TagsFilter::exists("priority"),
//!     ]),
//! ]);
//! assert_eq!(filter.depth(), 4);
//! ```

use gyre_protocol::FilterNode;

/// A filter over publication tags, sent with the subscribe request. Built from leaf
/// comparisons of one tag (`eq`, `is_in`, `gt`, ...) joined by [`TagsFilter::and`],
/// [`TagsFilter::or`] and [`TagsFilter::negate`] (or `!`). Numeric comparisons (`lt`, `lte`, `gt`, `gte`)
/// compare the tag and the value as numbers on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagsFilter(FilterNode);

impl TagsFilter {
    fn leaf(key: impl Into<String>, cmp: &str, val: impl Into<String>) -> Self {
        TagsFilter(FilterNode {
            key: key.into(),
            cmp: cmp.to_owned(),
            val: val.into(),
            ..Default::default()
        })
    }

    fn set(key: impl Into<String>, cmp: &str, vals: impl IntoIterator<Item: Into<String>>) -> Self {
        TagsFilter(FilterNode {
            key: key.into(),
            cmp: cmp.to_owned(),
            vals: vals.into_iter().map(Into::into).collect(),
            ..Default::default()
        })
    }

    fn logical(op: &str, filters: impl IntoIterator<Item = TagsFilter>) -> Self {
        TagsFilter(FilterNode {
            op: op.to_owned(),
            nodes: filters.into_iter().map(|f| f.0).collect(),
            ..Default::default()
        })
    }

    /// The tag `key` equals `val`.
    pub fn eq(key: impl Into<String>, val: impl Into<String>) -> Self {
        Self::leaf(key, "eq", val)
    }

    /// The tag `key` differs from `val` (or is absent).
    pub fn neq(key: impl Into<String>, val: impl Into<String>) -> Self {
        Self::leaf(key, "neq", val)
    }

    /// The tag `key` is one of `vals`.
    pub fn is_in(key: impl Into<String>, vals: impl IntoIterator<Item: Into<String>>) -> Self {
        Self::set(key, "in", vals)
    }

    /// The tag `key` is none of `vals`.
    pub fn not_in(key: impl Into<String>, vals: impl IntoIterator<Item: Into<String>>) -> Self {
        Self::set(key, "nin", vals)
    }

    /// The publication has the tag `key`.
    pub fn exists(key: impl Into<String>) -> Self {
        Self::leaf(key, "ex", "")
    }

    /// The publication lacks the tag `key`.
    pub fn not_exists(key: impl Into<String>) -> Self {
        Self::leaf(key, "nex", "")
    }

    /// The tag `key` starts with `prefix`.
    pub fn starts_with(key: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self::leaf(key, "sw", prefix)
    }

    /// The tag `key` ends with `suffix`.
    pub fn ends_with(key: impl Into<String>, suffix: impl Into<String>) -> Self {
        Self::leaf(key, "ew", suffix)
    }

    /// The tag `key` contains `part`.
    pub fn contains(key: impl Into<String>, part: impl Into<String>) -> Self {
        Self::leaf(key, "ct", part)
    }

    /// The tag `key` is a number below `val`.
    pub fn lt(key: impl Into<String>, val: impl Into<String>) -> Self {
        Self::leaf(key, "lt", val)
    }

    /// The tag `key` is a number below or equal to `val`.
    pub fn lte(key: impl Into<String>, val: impl Into<String>) -> Self {
        Self::leaf(key, "lte", val)
    }

    /// The tag `key` is a number above `val`.
    pub fn gt(key: impl Into<String>, val: impl Into<String>) -> Self {
        Self::leaf(key, "gt", val)
    }

    /// The tag `key` is a number above or equal to `val`.
    pub fn gte(key: impl Into<String>, val: impl Into<String>) -> Self {
        Self::leaf(key, "gte", val)
    }

    /// Every filter matches.
    pub fn and(filters: impl IntoIterator<Item = TagsFilter>) -> Self {
        Self::logical("and", filters)
    }

    /// At least one filter matches.
    pub fn or(filters: impl IntoIterator<Item = TagsFilter>) -> Self {
        Self::logical("or", filters)
    }

    /// The filter does not match (also written `!filter`).
    pub fn negate(filter: TagsFilter) -> Self {
        Self::logical("not", [filter])
    }

    /// Levels of the tree (a leaf is 1). The server refuses trees deeper than 32 levels or
    /// larger than 256 nodes with error 107 (bad request).
    pub fn depth(&self) -> usize {
        fn depth(node: &FilterNode) -> usize {
            1 + node.nodes.iter().map(depth).max().unwrap_or(0)
        }
        depth(&self.0)
    }

    /// The protocol's filter node, as sent in the subscribe request.
    pub(crate) fn node(&self) -> &FilterNode {
        &self.0
    }
}

impl std::ops::Not for TagsFilter {
    type Output = TagsFilter;

    fn not(self) -> TagsFilter {
        TagsFilter::negate(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_protocol_tree() {
        let f = TagsFilter::and([
            TagsFilter::eq("a", "1"),
            TagsFilter::negate(TagsFilter::is_in("b", ["x", "y"])),
        ]);
        let node = f.node();
        assert_eq!(node.op, "and");
        assert_eq!(node.nodes[0].cmp, "eq");
        assert_eq!(node.nodes[0].key, "a");
        assert_eq!(node.nodes[0].val, "1");
        assert_eq!(node.nodes[1].op, "not");
        assert_eq!(node.nodes[1].nodes[0].cmp, "in");
        assert_eq!(node.nodes[1].nodes[0].vals, vec!["x", "y"]);
        assert_eq!(f.depth(), 3);
        assert_eq!(
            serde_json::to_value(node).expect("json"),
            serde_json::json!({"op": "and", "nodes": [
                {"key": "a", "cmp": "eq", "val": "1"},
                {"op": "not", "nodes": [{"key": "b", "cmp": "in", "vals": ["x", "y"]}]}
            ]})
        );
    }
}
