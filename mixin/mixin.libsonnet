// The ses-identity-exporter monitoring mixin: alert rules and the dashboard, from
// one `_config` (config.libsonnet). Plain jsonnet (no jsonnet-bundler, no
// grafonnet); rendered by scripts/mixin.py with the pinned jsonnet of
// requirements-test.txt.
(import 'config.libsonnet')
+ (import 'alerts/alerts.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
