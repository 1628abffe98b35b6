//! The data the backups carry, and how two databases are compared.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::postgres::Postgres;

/// pgbench's tables (100 000 accounts) plus a table of mixed types and NULLs,
/// and `backup_runs`, which gets a row before each backup (so the restored
/// database tells which dump it came from).
pub fn load(pg: &Postgres, db: &str) {
    pg.run("pgbench", &["-i", "-q", "-s", "1", db]);
    pg.psql(
        db,
        "CREATE TABLE orders (
           id bigint PRIMARY KEY,
           customer text NOT NULL,
           placed timestamptz NOT NULL,
           amount numeric(12,2),
           note text,
           tags jsonb);
         INSERT INTO orders
           SELECT g, 'cüstomer-' || (g % 997),
                  timestamptz '2024-01-01 00:00:00+00' + g * interval '37 seconds',
                  (g * 7919 % 100000) / 100.0,
                  CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text) END,
                  jsonb_build_object('g', g, 'even', g % 2 = 0)
           FROM generate_series(1, 20000) g;
         CREATE INDEX orders_customer ON orders (customer);
         CREATE TABLE backup_runs (run int PRIMARY KEY, at timestamptz NOT NULL);",
    );
}

/// For each table of schema public: row count and md5 of its rows ordered by
/// primary key (by the whole row when it has none).
pub fn digests(pg: &Postgres, db: &str) -> BTreeMap<String, (i64, String)> {
    let tables = pg.psql(
        db,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1",
    );
    tables
        .lines()
        .map(|t| {
            let pk = pg.psql(
                db,
                &format!(
                    "SELECT coalesce(string_agg(quote_ident(a.attname), ',' ORDER BY k.ord), '')
                     FROM pg_index i
                     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     WHERE i.indrelid = 'public.{t}'::regclass AND i.indisprimary"
                ),
            );
            let order = match pk.trim() {
                "" => "t::text".to_string(),
                cols => cols.to_string(),
            };
            let row = pg.psql(
                db,
                &format!(
                    "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY {order})), '-')
                     FROM public.{t} t"
                ),
            );
            let (n, md5) = row.trim().split_once(' ').unwrap();
            (t.to_string(), (n.parse().unwrap(), md5.to_string()))
        })
        .collect()
}

/// The dumps the backup script names `<UTC timestamp>.dump` in `dir`, with sizes.
pub fn dump_files(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().into_string().unwrap();
            let ok = name.len() == 21
                && name.ends_with("Z.dump")
                && name.as_bytes()[8] == b'T'
                && name[..8]
                    .bytes()
                    .chain(name[9..15].bytes())
                    .all(|c| c.is_ascii_digit());
            ok.then(|| (name, e.metadata().unwrap().len()))
        })
        .collect()
}
