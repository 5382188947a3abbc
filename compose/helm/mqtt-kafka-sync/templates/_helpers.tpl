{{/* Names and labels. */}}
{{- define "mks.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mks.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mks.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "mks.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one role; call with (dict "root" $ "role" "ingest"). */}}
{{- define "mks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mks.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "mks.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mks.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The role of a connector from its connector.class; fails on any other class. */}}
{{- define "mks.role" -}}
{{- $class := index .config "connector.class" | default "" -}}
{{- if eq $class "mqtt_kafka_sync.MqttSourceConnector" -}}ingest
{{- else if eq $class "mqtt_kafka_sync.KafkaCommandRelayConnector" -}}relay
{{- else -}}
{{- fail (printf "connectors[%s]: connector.class %q is not one of mqtt_kafka_sync.MqttSourceConnector (ingest) or mqtt_kafka_sync.KafkaCommandRelayConnector (relay); set config.connector.class" .name $class) -}}
{{- end -}}
{{- end -}}

{{/*
The connectors as the pods read them, grouped by role: {"ingest": [{name, config}], "relay": [...]}
as JSON (fromJson it). Checks names, and gives an ingest connector without mqtt.client.id one
per pod ("<name>-${env:POD_NAME}"): pods of one Deployment must not share an MQTT client id. Not in
the sharded mode, where a session belongs to a shard, whichever pod owns it (its client id is
derived from the connector and the shard, so it must not depend on the pod).
*/}}
{{- define "mks.connectorsByRole" -}}
{{- $byRole := dict "ingest" (list) "relay" (list) -}}
{{- $seen := dict -}}
{{- range $i, $c := .Values.connectors -}}
{{- if not $c.name -}}
{{- fail (printf "connectors[%d]: no name; give each connector a name (letters, digits, '_', '.', '-')" $i) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" $c.name) -}}
{{- fail (printf "connectors[%d].name %q: use lower-case letters, digits, '-' and '.' (it names a ConfigMap key and Kubernetes objects)" $i $c.name) -}}
{{- end -}}
{{- if hasKey $seen $c.name -}}
{{- fail (printf "connectors: the name %q is given twice; connector names must be unique" $c.name) -}}
{{- end -}}
{{- $_ := set $seen $c.name true -}}
{{- if not $c.config -}}
{{- fail (printf "connectors[%s]: no config; give the connector's keys under config" $c.name) -}}
{{- end -}}
{{- $role := include "mks.role" $c -}}
{{- $config := deepCopy $c.config -}}
{{- $sharded := eq (index $config "mqtt.subscription" | default "" | toString) "sharded" -}}
{{- if and (eq $role "ingest") (not $sharded) (not (hasKey $config "mqtt.client.id")) -}}
{{- $_ := set $config "mqtt.client.id" (printf "%s-${env:POD_NAME}" $c.name) -}}
{{- end -}}
{{- $_ := set $byRole $role (append (get $byRole $role) (dict "name" $c.name "config" $config)) -}}
{{- end -}}
{{- if not .Values.connectors -}}
{{- fail "connectors: none given; list at least one connector (name and config) in the values" -}}
{{- end -}}
{{- toJson $byRole -}}
{{- end -}}

{{/*
Refuses more replicas than a role can use: a connector with mqtt.subscription=sharded serves the
shards of mqtt.shards, one replica each, so neither replicas nor autoscaling.maxReplicas may exceed
their count. Outside that mode, an MQTT client id that is not per pod (no ${env:POD_NAME}) is
refused with more than one replica. Call with (dict "root" $ "role" "ingest" "connectors" (list ...)).
*/}}
{{- define "mks.checkReplicas" -}}
{{- $values := get .root.Values .role -}}
{{- $max := int $values.replicas -}}
{{- $what := "replicas" -}}
{{- if $values.autoscaling.enabled -}}
{{- $max = int $values.autoscaling.maxReplicas -}}
{{- $what = "autoscaling.maxReplicas" -}}
{{- if gt (int $values.autoscaling.minReplicas) $max -}}
{{- fail (printf "%s.autoscaling.minReplicas (%d) is above %s.autoscaling.maxReplicas (%d)" .role (int $values.autoscaling.minReplicas) .role $max) -}}
{{- end -}}
{{- end -}}
{{- range .connectors -}}
{{- $mode := index .config "mqtt.subscription" | default "" | toString -}}
{{- if eq $mode "sharded" -}}
{{- $shards := list -}}
{{- range splitList "," (index .config "mqtt.shards" | default "" | toString) -}}
{{- if trim . -}}{{- $shards = append $shards (trim .) -}}{{- end -}}
{{- end -}}
{{- if not $shards -}}
{{- fail (printf "connectors[%s]: mqtt.subscription=sharded needs mqtt.shards (a comma-separated list of shard names)" .name) -}}
{{- end -}}
{{- if gt $max (len $shards) -}}
{{- fail (printf "%s.%s is %d but connector %s has %d shards (mqtt.shards=%s): a replica beyond the shard count would get no shard. Set %s.%s to at most %d, or add shards" $.role $what $max .name (len $shards) (join "," $shards) $.role $what (len $shards)) -}}
{{- end -}}
{{- end -}}
{{- $clientId := index .config "mqtt.client.id" | default "" | toString -}}
{{- if and (eq $.role "ingest") (ne $mode "sharded") (gt $max 1) (not (contains "${env:POD_NAME}" $clientId)) -}}
{{- fail (printf "connectors[%s]: mqtt.client.id %q is the same in every pod, but %s.%s is %d: pods would take each other's MQTT session. Leave mqtt.client.id out (the chart then uses %s-${env:POD_NAME}) or put ${env:POD_NAME} in it" .name $clientId $.role $what $max .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
