//! The manual pages and shell completions, generated for packaging (`hafront generate DIR`)
//! from the command line itself and from the configuration reference
//! ([`hafront_config::reference`]), so that neither can drift from the program.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use clap_complete::Shell;
use hafront_config::reference::SECTIONS;

/// Where the configuration file is by default.
const CONFIG_PATH: &str = "/etc/hafront/hafront.yaml";

/// Writes into `dir`: `man/` with hafront(1), one page per subcommand
/// (`hafront-check(1)`...) and hafront.yaml(5); `completions/` with the bash (`hafront.bash`),
/// zsh (`_hafront`) and fish (`hafront.fish`) completions of `cli`.
pub fn generate(cli: clap::Command, dir: &Path) -> io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&completions)?;
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    clap_mangen::generate_to(cli.clone(), &man)?;
    // The main page again, with what the command line does not say.
    let mut page = Vec::new();
    clap_mangen::Man::new(cli.clone()).render(&mut page)?;
    page.extend_from_slice(main_page_tail(&cli).as_bytes());
    fs::write(man.join("hafront.1"), page)?;
    fs::write(man.join("hafront.yaml.5"), config_page(cli.get_version()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cli, "hafront", &completions)?;
    }
    Ok(())
}

/// The FILES, EXIT STATUS and SEE ALSO sections of hafront(1).
fn main_page_tail(cli: &clap::Command) -> String {
    let subcommands: Vec<String> = cli
        .get_subcommands()
        .filter(|command| !command.is_hide_set())
        .map(|command| format!("hafront\\-{}(1)", command.get_name()))
        .collect();
    format!(
        ".SH FILES\n\
         .TP\n\\fI{CONFIG_PATH}\\fR\n\
         The configuration, see \\fBhafront.yaml\\fR(5). Check it with \\fBhafront check\\fR.\n\
         .TP\n\\fI/etc/hafront/secrets/\\fR\n\
         Passwords and keys the configuration names, readable by root only.\n\
         .TP\n\\fI/var/lib/hafront/\\fR\n\
         Persistent state: the alert mail queue, drained servers, failover blocks.\n\
         .TP\n\\fI/run/hafront/control.sock\\fR\n\
         The control socket of \\fBhafront status\\fR, \\fBreload\\fR and the other operator commands.\n\
         .SH EXIT STATUS\n\
         0 on success, 1 on failure (a configuration error, a refused command), \
         3 when \\fBstatus\\fR or another operator command finds no running daemon.\n\
         .SH SEE ALSO\n\
         \\fBhafront.yaml\\fR(5), {}, \\fBkeepalived\\fR(8), \\fBhaproxy\\fR(1), \\fBspiped\\fR(1), \
         \\fBsystemctl\\fR(1)\n",
        subcommands.join(", ")
    )
}

/// hafront.yaml(5): the file's rules and every key of [`SECTIONS`].
pub fn config_page(version: Option<&str>) -> String {
    let mut page = format!(
        ".TH HAFRONT.YAML 5 \"\" \"hafront {}\" \"File Formats\"\n\
         .SH NAME\nhafront.yaml \\- configuration of the hafront daemon\n\
         .SH SYNOPSIS\n\\fI{CONFIG_PATH}\\fR\n\
         .SH DESCRIPTION\n",
        version.unwrap_or_default()
    );
    for paragraph in [
        "One YAML file configures the daemon: health checks, pools of real servers, relays, \
         VRRP instances, alerts and notify programs. `hafront check -c FILE` prints `OK` or every \
         error as `FILE:LINE:COL: KEY: MESSAGE`; `hafront reload` applies a changed file to the \
         running daemon, or refuses it and keeps the running configuration.",
        "Unknown and repeated keys are errors. Durations are written `200ms`, `3s`, `1m`, `1h`; \
         addresses as an IP and a port (`127.0.0.1:3306`; names are not resolved); lists in \
         brackets (`listen: [127.0.0.1:3306]`); virtual addresses with their prefix length \
         (`192.0.2.100/24`). NAME in a path below is any name you choose; `[]` marks each item \
         of a list.",
        "Secrets (`password`, `replication_password`, `auth_pass`, `secret`) are written \
         `{ file: PATH }`, a file owned by root or by hafront's user that only its owner may read \
         (mode 600; key files too), or `{ value: TEXT }` in the file itself. They never appear in \
         logs or errors. Relative secret, key, certificate and CA paths are relative to the \
         directory of the configuration file.",
    ] {
        let _ = writeln!(page, ".PP\n{}", roff(paragraph));
    }
    page.push_str(".SH KEYS\n");
    for section in SECTIONS {
        let title = if section.path.is_empty() {
            "top level"
        } else {
            section.path
        };
        let _ = writeln!(page, ".SS \"{title}\"\n{}", roff(section.about));
        for key in section.keys {
            let _ = writeln!(
                page,
                ".TP\n.B {}\n{}\n.br\nDefault: {}.",
                key.name,
                roff(key.meaning),
                roff(key.default)
            );
        }
    }
    page.push_str(
        ".SH FILES\n\
         .TP\n\\fI/etc/hafront/hafront.yaml\\fR\n\
         The configuration the service reads, shipped commented.\n\
         .TP\n\\fI/usr/share/doc/hafront/examples/\\fR\n\
         One configuration per deployment: a single node, two front nodes sharing a VIP, \
         co-located on a MySQL pair, an encrypted cross-data-centre link, MariaDB failover.\n\
         .SH SEE ALSO\n\
         \\fBhafront\\fR(1), \\fBhafront\\-check\\fR(1), \\fBkeepalived.conf\\fR(5)\n",
    );
    page
}

/// `text` as roff: backslashes escaped, `code` in bold with its hyphens as minus signs, and
/// no line starting with a control character.
fn roff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut code = false;
    for character in text.chars() {
        match character {
            '`' => {
                out.push_str(if code { "\\fR" } else { "\\fB" });
                code = !code;
            }
            '\\' => out.push_str("\\e"),
            '-' if code => out.push_str("\\-"),
            _ => out.push(character),
        }
    }
    if out.starts_with(['.', '\'']) {
        out.insert_str(0, "\\&");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_bold_and_backslashes_are_escaped() {
        assert_eq!(
            roff("`-v` or a\\b"),
            "\\fB\\-v\\fR or a\\eb",
            "roff escapes"
        );
        assert_eq!(roff(".hidden"), "\\&.hidden");
    }
}
