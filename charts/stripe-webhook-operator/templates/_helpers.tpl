{{/* Names, labels and values shared by the templates. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "swo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name: `<release>-<chart>`, or the release name alone when it already
contains the chart name. Truncated so that `-operator`/`-receiver` suffixes stay within 63.
*/}}
{{- define "swo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "swo.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "swo.operator.fullname" -}}
{{- printf "%s-operator" (include "swo.fullname" .) -}}
{{- end -}}

{{- define "swo.receiver.fullname" -}}
{{- printf "%s-receiver" (include "swo.fullname" .) -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "swo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "swo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stripe-webhook-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels: the stable subset, never changed by an upgrade. Pass (dict "ctx" $ "component" "operator"). */}}
{{- define "swo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "swo.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of a component's objects. Pass (dict "ctx" $ "component" "operator"). */}}
{{- define "swo.componentLabels" -}}
{{ include "swo.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "swo.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "swo.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "swo.receiver.serviceAccountName" -}}
{{- if .Values.receiver.serviceAccount.create -}}
{{- default (include "swo.receiver.fullname" .) .Values.receiver.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.receiver.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: the digest wins over the tag; the tag defaults to appVersion. */}}
{{- define "swo.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Whether kopf peering is on: more than one operator pod. */}}
{{- define "swo.peering" -}}
{{- if gt (int .Values.operator.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{/* Whether the receiver uses PostgreSQL (a URL given directly or by Secret reference). */}}
{{- define "swo.postgres" -}}
{{- if or .Values.receiver.database.url .Values.receiver.database.existingSecret.name -}}true{{- end -}}
{{- end -}}

{{/* The most receiver pods that can run at once. */}}
{{- define "swo.receiver.maxReplicas" -}}
{{- if .Values.receiver.autoscaling.enabled -}}
{{- .Values.receiver.autoscaling.maxReplicas -}}
{{- else -}}
{{- .Values.receiver.replicas -}}
{{- end -}}
{{- end -}}

{{/* The Secret and key that hold the PostgreSQL URL. */}}
{{- define "swo.database.secretName" -}}
{{- if .Values.receiver.database.existingSecret.name -}}
{{- .Values.receiver.database.existingSecret.name -}}
{{- else -}}
{{- printf "%s-database" (include "swo.receiver.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "swo.database.secretKey" -}}
{{- if .Values.receiver.database.existingSecret.name -}}
{{- .Values.receiver.database.existingSecret.key -}}
{{- else -}}
database-url
{{- end -}}
{{- end -}}

{{/* The in-cluster URL the operator uses for the readiness handshake. */}}
{{- define "swo.receiver.url" -}}
{{- printf "http://%s.%s.svc:%v" (include "swo.receiver.fullname" .) .Release.Namespace .Values.receiver.service.port -}}
{{- end -}}

{{/* The public base URL: the value, else derived from the Ingress, else empty. */}}
{{- define "swo.publicBaseUrl" -}}
{{- if .Values.publicBaseUrl -}}
{{- .Values.publicBaseUrl | trimSuffix "/" -}}
{{- else if and .Values.receiver.ingress.enabled .Values.receiver.ingress.host -}}
{{- printf "%s://%s" (ternary "https" "http" (ne .Values.receiver.ingress.tlsSecretName "")) .Values.receiver.ingress.host -}}
{{- end -}}
{{- end -}}

{{/*
Whether a component gets a PodDisruptionBudget: `enabled` when it is true or false, else (null)
when more than one of its pods may run. Pass (dict "pdb" <its podDisruptionBudget> "replicas" <its most pods>).
*/}}
{{- define "swo.pdbEnabled" -}}
{{- if kindIs "bool" .pdb.enabled -}}
{{- if .pdb.enabled -}}true{{- end -}}
{{- else if gt (int .replicas) 1 -}}true{{- end -}}
{{- end -}}

{{/*
A PodDisruptionBudget spec body from {minAvailable, maxUnavailable}. Unhealthy pods may always
be evicted: a pod that never became ready protects nothing, and keeping it would block a
node drain for good (the IfHealthyBudget default).
*/}}
{{- define "swo.pdbSpec" -}}
unhealthyPodEvictionPolicy: AlwaysAllow
{{- if not (kindIs "invalid" .minAvailable) }}
minAvailable: {{ .minAvailable }}
{{- else if not (kindIs "invalid" .maxUnavailable) }}
maxUnavailable: {{ .maxUnavailable }}
{{- else }}
maxUnavailable: 1
{{- end }}
{{- end -}}

{{/*
A pod spec's affinity and topologySpreadConstraints: the values when set; else, when more than
one pod may run, soft rules that spread them: a preferred anti-affinity per node and a
ScheduleAnyway spread over zones (neither ever leaves a pod unscheduled on a small cluster).
Pass (dict "ctx" $ "component" "receiver" "values" <its values> "replicas" <its most pods>).
*/}}
{{- define "swo.spread" -}}
{{- $several := gt (int .replicas) 1 -}}
{{- if .values.affinity }}
affinity:
  {{- toYaml .values.affinity | nindent 2 }}
{{- else if $several }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "swo.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 14 }}
{{- end }}
{{- if .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml .values.topologySpreadConstraints | nindent 2 }}
{{- else if $several }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    # Counted per ReplicaSet, so that a rolling update is spread too.
    matchLabelKeys: [pod-template-hash]
    labelSelector:
      matchLabels:
        {{- include "swo.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 8 }}
{{- end }}
{{- end -}}

{{/* Whether the operator watches only `watchNamespaces` (namespace mode) rather than all. */}}
{{- define "swo.namespaced" -}}
{{- if .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/*
Whether the operator gets a ClusterRole: always in cluster-wide mode; in namespace mode only to
read the kube-system namespace's uid (the default cluster id), which no Role can grant.
*/}}
{{- define "swo.operator.clusterRole" -}}
{{- if and .Values.rbac.create (or (not (include "swo.namespaced" .)) (not .Values.clusterId)) -}}true{{- end -}}
{{- end -}}

{{/*
What the operator does with StripeWebhooks, Secrets and Events where they live: the rules of
the ClusterRole in cluster-wide mode, of each watched namespace's Role in namespace mode.
*/}}
{{- define "swo.operator.webhookRules" -}}
# kopf lists and watches StripeWebhooks and patches them (its finalizer, handler progress in
# annotations); the operator reads them and patches its own annotations (pending idempotency
# key, endpoint id).
- apiGroups: [stripe.operator.dev]
  resources: [stripewebhooks]
  verbs: [get, list, watch, patch]
# The status subresource holds the endpoint id, the secret version and the conditions.
- apiGroups: [stripe.operator.dev]
  resources: [stripewebhooks/status]
  verbs: [patch]
# Each per-webhook Secret is owned by its StripeWebhook with blockOwnerDeletion; where the
# OwnerReferencesPermissionEnforcement admission plugin runs, that needs update on finalizers.
- apiGroups: [stripe.operator.dev]
  resources: [stripewebhooks/finalizers]
  verbs: [update]
# Secrets: the operator reads each webhook's Stripe API key Secret and watches Secrets to notice
# a lost signing secret; it creates and patches the per-webhook Secret beside each
# StripeWebhook (and, cluster-wide, the aggregated receiver Secret). It never deletes a Secret:
# the garbage collector removes a per-webhook Secret with its owner.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
# Events tell users what happened to their StripeWebhook; kopf posts core v1 Events.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* The port of the Stripe API the operator calls: that of `stripe.apiBase`, else 443. */}}
{{- define "swo.stripePort" -}}
{{- $url := urlParse (default "https://api.stripe.com" .Values.stripe.apiBase) -}}
{{- $host := get $url "host" -}}
{{- if contains ":" $host -}}
{{- last (splitList ":" $host) -}}
{{- else if eq (get $url "scheme") "http" -}}
80
{{- else -}}
443
{{- end -}}
{{- end -}}

{{/*
Refuse value combinations that would install something broken, each with a sentence saying why
and what to set instead. Included by the receiver Deployment, which every install renders.
*/}}
{{- define "swo.validate" -}}
{{- $db := .Values.receiver.database -}}
{{- if and $db.url $db.existingSecret.name -}}
{{- fail "`receiver.database.url` and `receiver.database.existingSecret.name` are both set; set only one of them." -}}
{{- end -}}
{{- if and $db.url (not (regexMatch "^postgres(ql)?://" $db.url)) -}}
{{- fail "`receiver.database.url` must be a PostgreSQL URL starting with 'postgresql://'; leave it empty to use SQLite." -}}
{{- end -}}
{{- $max := int (include "swo.receiver.maxReplicas" .) -}}
{{- if and (gt $max 1) (not (include "swo.postgres" .)) -}}
{{- fail (printf "The receiver may run %d pods but has no PostgreSQL database, and SQLite cannot be shared between pods; set `receiver.database.url` or `receiver.database.existingSecret.name`, or run one pod." $max) -}}
{{- end -}}
{{- if and .Values.receiver.autoscaling.enabled (gt (int .Values.receiver.autoscaling.minReplicas) (int .Values.receiver.autoscaling.maxReplicas)) -}}
{{- fail "`receiver.autoscaling.minReplicas` must not be greater than `receiver.autoscaling.maxReplicas`." -}}
{{- end -}}
{{- if and .Values.receiver.ingress.enabled (not .Values.receiver.ingress.host) -}}
{{- fail "`receiver.ingress.enabled` is true but `receiver.ingress.host` is empty; set the public host name Stripe posts to." -}}
{{- end -}}
{{- range $component := list "operator" "receiver" -}}
{{- $pdb := get (get $.Values $component) "podDisruptionBudget" -}}
{{- if and (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) -}}
{{- fail (printf "`%s.podDisruptionBudget.minAvailable` and `%s.podDisruptionBudget.maxUnavailable` are both set; set only one of them." $component $component) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.dashboards.enabled (not (.Files.Get "dashboards/stripe-webhook.json")) -}}
{{- fail "`dashboards.enabled` is true but the chart has no dashboards/stripe-webhook.json; set `dashboards.enabled` to false." -}}
{{- end -}}
{{- if and .Values.prometheusRule.enabled (not (.Files.Get "alerts/stripe-webhook-rules.yaml")) -}}
{{- fail "`prometheusRule.enabled` is true but the chart has no alerts/stripe-webhook-rules.yaml; set `prometheusRule.enabled` to false." -}}
{{- end -}}
{{- end -}}
