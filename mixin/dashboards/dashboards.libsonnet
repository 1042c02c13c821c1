// The dashboard. ses-identity-exporter.json is its source, edited as JSON (which
// is jsonnet): every query selects `job=~"$job"` and reads the datasource
// variable. The mixin adds the `job` variable, whose choices are the jobs the
// `_config.selector` matches, and gives two renderings:
// - grafanaDashboards: for provisioning and the Grafana sidecar, which load the
//   file as it is (no `__inputs`: the sidecar does not substitute them);
// - grafanaDotComDashboards: the export for grafana.com, whose import asks for the
//   Prometheus datasource through `__inputs` and lists `__requires`.
local source = import 'ses-identity-exporter.json';

{
  local config = self._config,

  local job = {
    name: 'job',
    label: 'Job',
    type: 'query',
    datasource: { type: 'prometheus', uid: '${datasource}' },
    query: {
      query: 'label_values(aws_ses_exporter_build_info{%(selector)s}, job)' % config,
      refId: 'job',
    },
    definition: self.query.query,
    multi: true,
    includeAll: true,
    allValue: '.+',
    current: { text: 'All', value: '$__all' },
    refresh: 2,
    sort: 1,
    hide: 0,
  },

  // The datasource variable first, then `job`, then the source's others.
  local dashboard = source {
    templating+: {
      list: [source.templating.list[0], job] + source.templating.list[1:],
    },
  },

  grafanaDashboards+:: {
    'ses-identity-exporter.json': dashboard,
  },

  grafanaDotComDashboards+:: {
    'ses-identity-exporter.json': dashboard {
      __inputs: [{
        name: 'DS_PROMETHEUS',
        label: 'Prometheus',
        description: 'The Prometheus that scrapes ses-identity-exporter',
        type: 'datasource',
        pluginId: 'prometheus',
        pluginName: 'Prometheus',
      }],
      __requires: [
        { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.3.0' },
        { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      ] + [
        { type: 'panel', id: type, name: type, version: '' }
        for type in std.set([p.type for p in source.panels if p.type != 'row'])
      ],
      // The import fills the datasource variable's default with the chosen one.
      templating+: {
        list: [
          if v.name == 'datasource'
          then v { current: { text: '${DS_PROMETHEUS}', value: '${DS_PROMETHEUS}' } }
          else v
          for v in super.list
        ],
      },
    },
  },
}
