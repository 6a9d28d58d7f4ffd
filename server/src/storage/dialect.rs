//! How the two backends spell the little that differs in a statement both share (the watch list,
//! an offer's uptake): the parameter prefix, the cast that makes a sum an integer again, and byte
//! order for ids. A statement is written once with `?N` parameters and these slots.

/// One backend's spelling.
pub(crate) struct Dialect {
    /// Positional parameter prefix: `?` or `$`.
    pub param: char,
    /// The cast that makes a sum an integer again (PostgreSQL sums bigints to numeric).
    pub int: &'static str,
    /// Byte-order comparison of ids, so both backends break ties alike.
    pub collate: &'static str,
    /// A text NULL.
    pub null_text: &'static str,
}

pub(crate) const SQLITE: Dialect = Dialect {
    param: '?',
    int: "",
    collate: "",
    null_text: "NULL",
};

pub(crate) const POSTGRES: Dialect = Dialect {
    param: '$',
    int: "::bigint",
    collate: " COLLATE \"C\"",
    null_text: "NULL::text",
};

impl Dialect {
    /// `sql`, written with `?N` parameters, in this backend's spelling.
    pub(crate) fn params(&self, sql: &str) -> String {
        sql.replace('?', &self.param.to_string())
    }
}
