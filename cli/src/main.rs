//! `cairn`: the Cairn command-line tool.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("cairn is not built yet")
}
