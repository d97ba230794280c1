# flowaudit policy (windows) from an audit report directory (schema version 4)
# groups by role; only documented traffic the capture showed; ports narrowed to the observed ones; no default drop
# 12 allow rules, 13 address groups, 5 candidates for review (never allowed)
#
# Inbound Windows Defender Firewall rules (New-NetFirewallRule). Run on each server host,
# as administrator, naming the host as the inventory does:
#   powershell -ExecutionPolicy Bypass -File policy.ps1 -Target vbr01
# Return traffic: Windows Firewall is stateful; replies of an allowed connection need no rule.
# Rules of an earlier run (display group 'flowaudit') are removed first.
param(
    [Parameter(Mandatory = $true)][string]$Target
)
$ErrorActionPreference = 'Stop'
if (@('bemedia01','files01','proxy01','pve01','repo01','vbr01','ws-fin-01') -notcontains $Target) {
    throw "flowaudit policy has no rules for host $Target (hosts: bemedia01, files01, proxy01, pve01, repo01, vbr01, ws-fin-01)"
}
Get-NetFirewallRule -Group 'flowaudit' -ErrorAction SilentlyContinue | Remove-NetFirewallRule

# Address lists, one per group
$r_agent_computer_windows = @('10.1.0.40')  # agent-computer-windows
$r_backup_console = @('10.1.0.5')  # backup-console
$r_backup_proxy = @('10.1.0.20')  # backup-proxy
$r_backup_repository = @('10.1.0.30')  # backup-repository
$r_backup_server = @('10.1.0.10')  # backup-server
$r_be_remote_agent = @('10.1.0.61')  # be-remote-agent
$r_be_server = @('10.1.0.60')  # be-server
$r_enterprise_manager = @('10.1.0.11')  # enterprise-manager
$r_linux_server = @('10.1.0.30')  # linux-server
$r_proxmox_ve_server = @('10.1.0.50')  # proxmox-ve-server
$r_proxmox_worker = @('10.1.0.51')  # proxmox-worker
$r_windows_backup_server = @('10.1.0.10')  # windows-backup-server
$r_windows_server = @('10.1.0.10','10.1.0.20')  # windows-server

if ($Target -eq 'bemedia01') {
    # BE-002,BE-004,BE-006 be-remote-agent -> be-server tcp 6101 (vendor range 1025-65535)
    New-NetFirewallRule -Name 'flowaudit-bemedia01-1' -DisplayName 'flowaudit BE-002,BE-004,BE-006 be-remote-agent -> be-server tcp 6101' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '6101' -RemoteAddress $r_be_remote_agent -Description 'BE-002 Veritas Backup Exec / Which PORTS needs to be opened on the FIREWALL; BE-004 Veritas Backup Exec / Which PORTS needs to be opened on the FIREWALL; BE-006 Veritas Backup Exec / Recommended PORT consideration for a Firewall/TCP Filtered environment; 1 flows, 1668 bytes, first 2026-01-01T00:00:05.588Z, last 2026-01-01T00:00:05.595Z' | Out-Null
}

if ($Target -eq 'files01') {
    # BE-001,BE-005 be-server -> be-remote-agent tcp 10000,40000-40001,40003 (vendor range 1025-65535)
    New-NetFirewallRule -Name 'flowaudit-files01-1' -DisplayName 'flowaudit BE-001,BE-005 be-server -> be-remote-agent tcp 10000,40000-40001,40003' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '10000','40000-40001','40003' -RemoteAddress $r_be_server -Description 'BE-001 Veritas Backup Exec / Which PORTS needs to be opened on the FIREWALL; BE-005 Veritas Backup Exec / Recommended PORT consideration for a Firewall/TCP Filtered environment; 4 flows, 6672 bytes, first 2026-01-01T00:00:05.080Z, last 2026-01-01T00:00:07.119Z' | Out-Null
    # BE-003 be-server -> be-remote-agent tcp 10000
    New-NetFirewallRule -Name 'flowaudit-files01-2' -DisplayName 'flowaudit BE-003 be-server -> be-remote-agent tcp 10000' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '10000' -RemoteAddress $r_be_server -Description 'BE-003 Veritas Backup Exec / Which PORTS needs to be opened on the FIREWALL; 1 flows, 1668 bytes, first 2026-01-01T00:00:05.080Z, last 2026-01-01T00:00:05.087Z' | Out-Null
}

if ($Target -eq 'proxy01') {
    # VBR-002 backup-server -> windows-server tcp 6160
    New-NetFirewallRule -Name 'flowaudit-proxy01-1' -DisplayName 'flowaudit VBR-002 backup-server -> windows-server tcp 6160' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '6160' -RemoteAddress $r_backup_server -Description 'VBR-002 Veeam Backup & Replication / Microsoft Windows Server; 1 flows, 120 bytes, first 2026-01-01T00:00:07.620Z, last 2026-01-01T00:00:07.621Z; 1 of 1 services refused or unanswered' | Out-Null
    # VBR-007 backup-server -> windows-server tcp 6162
    New-NetFirewallRule -Name 'flowaudit-proxy01-2' -DisplayName 'flowaudit VBR-007 backup-server -> windows-server tcp 6162' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '6162' -RemoteAddress $r_backup_server -Description 'VBR-007 Veeam Backup & Replication / Microsoft Windows Server; 1 flows, 1668 bytes, first 2026-01-01T00:00:00.000Z, last 2026-01-01T00:00:00.007Z' | Out-Null
}

if ($Target -eq 'pve01') {
    # PVE-001 proxmox-worker -> proxmox-ve-server tcp 8006
    New-NetFirewallRule -Name 'flowaudit-pve01-1' -DisplayName 'flowaudit PVE-001 proxmox-worker -> proxmox-ve-server tcp 8006' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '8006' -RemoteAddress $r_proxmox_worker -Description 'PVE-001 Veeam Backup & Replication for Proxmox VE / Workers; 1 flows, 1668 bytes, first 2026-01-01T00:00:04.064Z, last 2026-01-01T00:00:04.071Z' | Out-Null
}

if ($Target -eq 'repo01') {
    # The inventory gives this host a Linux role: the nftables or iptables output fits it better.
    # VBR-015 backup-server -> linux-server tcp 22
    New-NetFirewallRule -Name 'flowaudit-repo01-1' -DisplayName 'flowaudit VBR-015 backup-server -> linux-server tcp 22' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '22' -RemoteAddress $r_backup_server -Description 'VBR-015 Veeam Backup & Replication / Linux Server; 1 flows, 1668 bytes, first 2026-01-01T00:00:00.508Z, last 2026-01-01T00:00:00.515Z' | Out-Null
    # VBR-016 backup-server -> linux-server tcp 6162
    New-NetFirewallRule -Name 'flowaudit-repo01-2' -DisplayName 'flowaudit VBR-016 backup-server -> linux-server tcp 6162' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '6162' -RemoteAddress $r_backup_server -Description 'VBR-016 Veeam Backup & Replication / Linux Server; 1 flows, 120 bytes, first 2026-01-01T00:00:08.122Z, last 2026-01-01T00:00:08.123Z; 1 of 1 services refused or unanswered' | Out-Null
    # VBR-058 backup-proxy -> backup-repository tcp 2500-2502,2505 (vendor range 2500-3300)
    New-NetFirewallRule -Name 'flowaudit-repo01-3' -DisplayName 'flowaudit VBR-058 backup-proxy -> backup-repository tcp 2500-2502,2505' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '2500-2502','2505' -RemoteAddress $r_backup_proxy -Description 'VBR-058 Veeam Backup & Replication / Microsoft Windows/Linux Backup Repository; 4 flows, 6672 bytes, first 2026-01-01T00:00:01.016Z, last 2026-01-01T00:00:02.547Z' | Out-Null
}

if ($Target -eq 'vbr01') {
    # EM-030 enterprise-manager -> windows-backup-server tcp 9392
    New-NetFirewallRule -Name 'flowaudit-vbr01-1' -DisplayName 'flowaudit EM-030 enterprise-manager -> windows-backup-server tcp 9392' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '9392' -RemoteAddress $r_enterprise_manager -Description 'EM-030 Veeam Backup Enterprise Manager / Veeam Backup Enterprise Manager on Windows; 1 flows, 1668 bytes, first 2026-01-01T00:00:03.556Z, last 2026-01-01T00:00:03.563Z' | Out-Null
    # VBR-002 backup-server -> windows-server tcp 6160
    New-NetFirewallRule -Name 'flowaudit-vbr01-2' -DisplayName 'flowaudit VBR-002 backup-server -> windows-server tcp 6160' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '6160' -RemoteAddress $r_backup_server -Description 'VBR-002 Veeam Backup & Replication / Microsoft Windows Server; 1 flows, 120 bytes, first 2026-01-01T00:00:07.620Z, last 2026-01-01T00:00:07.621Z; 1 of 1 services refused or unanswered' | Out-Null
    # VBR-007 backup-server -> windows-server tcp 6162
    New-NetFirewallRule -Name 'flowaudit-vbr01-3' -DisplayName 'flowaudit VBR-007 backup-server -> windows-server tcp 6162' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '6162' -RemoteAddress $r_backup_server -Description 'VBR-007 Veeam Backup & Replication / Microsoft Windows Server; 1 flows, 1668 bytes, first 2026-01-01T00:00:00.000Z, last 2026-01-01T00:00:00.007Z' | Out-Null
    # VBR-036 backup-console -> backup-server tcp 9392
    New-NetFirewallRule -Name 'flowaudit-vbr01-4' -DisplayName 'flowaudit VBR-036 backup-console -> backup-server tcp 9392' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '9392' -RemoteAddress $r_backup_console -Description 'VBR-036 Veeam Backup & Replication / Backup & Replication Console; 1 flows, 1668 bytes, first 2026-01-01T00:00:03.048Z, last 2026-01-01T00:00:03.055Z' | Out-Null
}

if ($Target -eq 'ws-fin-01') {
    # AGT-001 backup-server -> agent-computer-windows tcp 6184
    New-NetFirewallRule -Name 'flowaudit-ws_fin_01-1' -DisplayName 'flowaudit AGT-001 backup-server -> agent-computer-windows tcp 6184' -Group 'flowaudit' -Direction Inbound -Action Allow -Protocol TCP -LocalPort '6184' -RemoteAddress $r_backup_server -Description 'AGT-001 Veeam Backup & Replication (Veeam Agent management) / Communication Between Veeam Backup & Replication Components; 1 flows, 1668 bytes, first 2026-01-01T00:00:04.572Z, last 2026-01-01T00:00:04.579Z' | Out-Null
}

# Candidates for review, never allowed by this policy:
# proxy01 (10.1.0.20) -> repo01 (10.1.0.30) tcp/3306: undocumented: no vendor rule covers it; 1 flows, 1668 bytes, first 2026-01-01T00:00:08.624Z, last 2026-01-01T00:00:08.631Z
# ws-fin-01 (10.1.0.40) -> repo01 (10.1.0.30) tcp/8006: role-mismatch: documented only between other roles; 1 flows, 1668 bytes, first 2026-01-01T00:00:09.132Z, last 2026-01-01T00:00:09.139Z
# repo01 (10.1.0.30) -> vbr01 (10.1.0.10) tcp/22: reverse: only the opposite direction is documented; 1 flows, 1668 bytes, first 2026-01-01T00:00:09.640Z, last 2026-01-01T00:00:09.647Z
# vbr01 (10.1.0.10) -> 10.1.0.2 udp/53: unknown-host: an end is not in the inventory; 1 flows, 204 bytes, first 2026-01-01T00:00:10.656Z, last 2026-01-01T00:00:10.658Z
# 10.1.0.99 -> vbr01 (10.1.0.10) tcp/443: unknown-host: an end is not in the inventory; 1 flows, 1668 bytes, first 2026-01-01T00:00:10.148Z, last 2026-01-01T00:00:10.155Z
