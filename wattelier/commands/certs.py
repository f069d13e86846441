"""`wattelier certs`: make the collector's OPC UA certificate and say what to trust where."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from collector.errors import ConfigError
from devices.site import Controller, SecurityPolicy
from wattelier.commands.common import CONFIG_HELP, site_or_exit

if TYPE_CHECKING:
    from collector import certs as pki_files


def _folders(controllers: dict[str, Controller], folder: Path | None
             ) -> dict[pki_files.ClientPki, list[tuple[str, Controller]]]:
    """Certificate folders and the secured controllers using each."""
    from collector import certs as pki_files  # noqa: F811 (cryptography: for this command only)

    groups: dict[pki_files.ClientPki, list[tuple[str, Controller]]] = {}
    for name, ctl in sorted(controllers.items()):
        if ctl.security_policy is SecurityPolicy.NONE:
            continue
        pki = (pki_files.client_pki(folder) if folder is not None
               else pki_files.client_pki(ctl.certificate_dir, ctl.trust_dir))
        groups.setdefault(pki, []).append((name, ctl))
    if not groups:
        groups[pki_files.client_pki(folder)] = []
    return groups


def certs(
    config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
    folder: Path = typer.Option(None, "--dir", help="Certificate folder (default: each secured "
                                "controller's certificate_dir, else wattelier-pki)."),
    renew: bool = typer.Option(False, "--renew", help="Make a new key and certificate; every "
                               "server must then trust the new certificate."),
) -> None:
    """Make the collector's OPC UA certificate and key if missing; print what to copy where."""
    from collector import certs as pki_files  # noqa: F811 (cryptography: for this command only)

    site = site_or_exit(config)
    for pki, controllers in _folders(site.controllers, folder).items():
        try:
            identity = pki_files.ensure_client_certificate(pki, renew=renew)
        except ConfigError as exc:
            typer.echo(f"cannot make the certificate: {exc}", err=True)
            raise typer.Exit(1)
        state = "made now" if "certificate" in identity.created else "already there"
        typer.echo(f"OPC UA client certificate: {pki.certificate_path} ({state})")
        typer.echo(f"  {pki_files.describe(identity.certificate)}")
        typer.echo(f"private key: {pki.private_key_path} (mode 600 in a mode 700 folder: keep "
                   "it there, never copy it)")
        if controllers:
            typer.echo(f"1. On each machine, add {pki.certificate_path} to the OPC UA server's "
                       "trusted client certificates:")
            for name, ctl in controllers:
                user = (f"user {ctl.username!r}" if ctl.username else
                        "user certificate" if ctl.user_certificate else "anonymous")
                typer.echo(f"   - {name} ({ctl.machine}): {ctl.endpoint}, "
                           f"{ctl.security_policy.value}/{ctl.security_mode.value}, {user}")
        else:
            typer.echo(f"1. No controller of the site uses security yet; give {pki.certificate_path} "
                       "to each OPC UA server that should trust the collector.")
        trusted = pki_files.trusted_certificates(pki.trust_dir)
        typer.echo(f"2. Copy each machine's server certificate into {pki.trust_dir}/ "
                   f"({len(trusted)} there now). A server not there is refused; its certificate "
                   f"is then saved in {pki.rejected_dir}/ and the collector's log names the file "
                   "to copy, after you compare its SHA-1 thumbprint with the machine's.")
        waiting = sorted(p for p in pki.rejected_dir.glob("*.der")
                         if pki_files.der(pki_files.load_certificate(p)) not in trusted)
        for path in waiting:
            typer.echo(f"   refused so far: {path} "
                       f"({pki_files.describe(pki_files.load_certificate(path))})")
