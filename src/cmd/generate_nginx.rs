//! `mas-sockets generate-nginx`: print or write the nginx site for the config.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::GenerateNginxArgs;
use crate::config::plan::escape_controls;
use crate::nginx::site::{self, Context, MatrixHost, RedirectMode, SiteOptions, SystemAccounts};

/// Runs `generate-nginx`.
///
/// # Errors
///
/// A site that cannot be generated for this config, or a file that cannot be written.
pub fn run(args: GenerateNginxArgs) -> anyhow::Result<ExitCode> {
    if let Some(what) = super::empty_mas_config(&args.config) {
        eprintln!("mas-sockets: warning: {what}; if a config was meant, give it with --config");
    }
    let plan = match super::load_plan(&args.config, super::EXIT_CANNOT_RUN) {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    let matrix = match (args.matrix_server_name, args.homeserver) {
        (Some(server_name), Some(homeserver)) => Some(MatrixHost {
            server_name,
            homeserver,
        }),
        // clap requires each with the other.
        _ => None,
    };
    let opts = SiteOptions {
        name: args.name,
        server_name: args.server_name,
        matrix,
        assets_dir: args.assets_dir,
        tls: args.tls_cert.zip(args.tls_key),
        listen: args.listen,
        redirect: if args.no_redirect {
            RedirectMode::Off
        } else {
            RedirectMode::ToHttps
        },
        socket_group: args.socket_group,
        nginx_user: args.nginx_user,
    };
    // Messages quote the config's values: shown escaped, each stays one line.
    let generated = site::generate(&plan, &opts, &SystemAccounts)
        .map_err(|e| anyhow::anyhow!(escape_controls(&e.to_string())))?;
    for warning in &generated.warnings {
        eprintln!("mas-sockets: warning: {}", escape_controls(warning));
    }
    match &args.output_dir {
        None => {
            let mut out = String::new();
            for file in &generated.files {
                out.push_str(&format!("### {}\n{}", file.name, file.contents));
            }
            super::print_stdout(&out)?;
        }
        Some(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for file in &generated.files {
                let path = dir.join(&file.name);
                let tmp = dir.join(format!(".{}.tmp", file.name));
                let write = || -> std::io::Result<()> {
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o644)
                        .open(&tmp)?;
                    f.write_all(file.contents.as_bytes())?;
                    f.sync_all()?;
                    fs::rename(&tmp, &path)
                };
                if let Err(e) = write() {
                    let _ = fs::remove_file(&tmp);
                    return Err(e).with_context(|| {
                        format!(
                            "cannot write {}; check that the directory is writable",
                            path.display()
                        )
                    });
                }
                let next = match file.context {
                    Context::Http => "include it in nginx's `http { }` (Debian: link it into /etc/nginx/sites-enabled/)".to_owned(),
                    // Debian's nginx.conf has no stream block, nor a directory
                    // that one includes; its modules-enabled/ only loads the
                    // module (libnginx-mod-stream).
                    Context::Stream => format!(
                        "add `stream {{ include {}; }}` at the end of nginx.conf, outside `http {{ }}` (Debian: apt-get install libnginx-mod-stream, which loads the module)",
                        std::path::absolute(&path).unwrap_or_else(|_| path.clone()).display()
                    ),
                };
                super::print_stdout(&format!(
                    "wrote {}\nnext: {next}, then nginx -t && systemctl reload nginx\n",
                    path.display()
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
