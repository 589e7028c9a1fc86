{{- /* The chart's name, or nameOverride: app.kubernetes.io/name of every object. */ -}}
{{- define "taituri.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /*
The prefix of every object's name: fullnameOverride, or <release>-<name> (just <release> when the
release's name already holds the chart's). Truncated so that "<fullname>-<component>-<suffix>"
stays a valid name.
*/ -}}
{{- define "taituri.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "taituri.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "taituri.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* Labels of every object the chart renders; a component's add taituri.componentLabels. */ -}}
{{- define "taituri.labels" -}}
helm.sh/chart: {{ include "taituri.chart" . }}
app.kubernetes.io/name: {{ include "taituri.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/part-of: taituri
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- /* A component's labels: taituri.labels and its component. (dict "root" $ "name" component) */ -}}
{{- define "taituri.componentLabels" -}}
{{ include "taituri.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- /* What a component's Deployment, Service, PDB and NetworkPolicies select: never the version, which changes. */ -}}
{{- define "taituri.selector" -}}
app.kubernetes.io/name: {{ include "taituri.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- /* The image every pod runs: by digest when image.digest is set (immutable), else by tag. */ -}}
{{- define "taituri.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The components that use Kafka (KAFKA_SERVICES of packages/kafka/src/access.ts, and the dispatcher,
which is ingress: all but the limiter) and the one that uses Redis (the limiter): each pod gets the
addresses, credentials and tokens of its own servers only. "true" or "false" for a component's name.
*/}}
{{- define "taituri.usesKafka" -}}
{{- has . (list "ingress" "dispatcher" "conversation" "generation" "payment") -}}
{{- end -}}
{{- define "taituri.usesRedis" -}}
{{- eq . "limiter" -}}
{{- end -}}

{{- /*
The service a component runs (services/<service>/src/main.ts), and so its identity: the
ServiceAccount its pods run as (<fullname>-<service>), its Kafka user and password. A component's
own name, but the dispatcher's: ingress run with INGRESS_ROLE=dispatcher, which reads and writes
what ingress's principal may (packages/kafka/data/access.json), so it logs in as ingress.
*/ -}}
{{- define "taituri.serviceOf" -}}
{{- ternary "ingress" . (eq . "dispatcher") -}}
{{- end -}}

{{- /*
The ServiceAccounts the release renders, one per service whose component is enabled (the
dispatcher's is ingress's, rendered for it even with components.ingress off). JSON list.
*/ -}}
{{- define "taituri.serviceAccounts" -}}
{{- $accounts := list -}}
{{- range $name, $component := .Values.components -}}
{{- if $component.enabled -}}
{{- $accounts = append $accounts (include "taituri.serviceOf" $name) -}}
{{- end -}}
{{- end -}}
{{- toJson ($accounts | uniq | sortAlpha) -}}
{{- end -}}

{{/*
The policy data files each component reads (values: policy), as "<key> <file> <ENV>" lines: the
key of values policy (and of the ConfigMap), the file name in the pod, and the variable that tells
the service where it is. The catalog is read by two: the conversation offers from it and payment
checks prices against it.
*/}}
{{- define "taituri.policyFiles" -}}
{{- $files := dict
  "conversation" (list (list "catalog" "catalog.yaml" "CATALOG_FILE") (list "messages" "messages.json" "MESSAGES_FILE") (list "countries" "countries.json" "CONVERSATION_COUNTRIES_FILE"))
  "generation" (list (list "prompts" "prompts.json" "PROMPTS_FILE") (list "prices" "prices.json" "PRICES_FILE"))
  "limiter" (list (list "limits" "limits.yaml" "LIMITER_RULES_FILE"))
  "payment" (list (list "catalog" "catalog.yaml" "PAYMENT_CATALOG_FILE")) -}}
{{- toJson (index $files . | default list) -}}
{{- end -}}

{{- /*
A component's policy ConfigMap data, as YAML: each file from values policy.<key>, or, empty, the
file the chart ships (files/, the repository's own data). (dict "root" $ "name" component)
*/ -}}
{{- define "taituri.policyData" -}}
{{- $root := .root -}}
{{- range $f := (include "taituri.policyFiles" .name | fromJsonArray) }}
{{ index $f 1 }}: {{ (index $root.Values.policy (index $f 0)) | default ($root.Files.Get (printf "files/%s" (index $f 1))) | quote }}
{{- end -}}
{{- end -}}

{{/*
Where a credential is read from: a secretKeyRef to secrets.refs.<KEY>.secret (or secrets.name)
under secrets.refs.<KEY>.key (or the credential's own name). Under environment local with
secrets.name empty, the chart's own Secret of secrets.inline (secret.yaml).
(dict "root" $ "key" "PSEUDONYM_KEY")
*/}}
{{- define "taituri.secretRef" -}}
{{- $ref := index (.root.Values.secrets.refs | default dict) .key | default dict -}}
{{- $name := $ref.secret | default .root.Values.secrets.name | default (printf "%s-inline" (include "taituri.fullname" .root)) -}}
{{- $key := $ref.key | default .key -}}
{ secretKeyRef: { name: {{ $name }}, key: {{ $key }}{{ if .optional }}, optional: true{{ end }} } }
{{- end -}}

{{- /*
The credentials this release's pods read, by name (the keys a Secret must hold): for NOTES.txt
and the refusal of a release that names no Secret for them. JSON list.
*/ -}}
{{- define "taituri.requiredSecrets" -}}
{{- $v := .Values -}}
{{- $c := $v.components -}}
{{- $keys := list "PSEUDONYM_KEY" -}}
{{- /* The webhook checks Meta's signatures, the dispatcher calls the Graph API; the simulator plays both. */ -}}
{{- if or $c.ingress.enabled $v.simulator.enabled -}}
{{- $keys = append $keys "WHATSAPP_APP_SECRET" -}}
{{- end -}}
{{- if or $c.dispatcher.enabled $v.simulator.enabled -}}
{{- $keys = append $keys "WHATSAPP_ACCESS_TOKEN" -}}
{{- end -}}
{{- if $c.ingress.enabled -}}
{{- $keys = append $keys "WHATSAPP_VERIFY_TOKEN" -}}
{{- end -}}
{{- if $c.payment.enabled -}}
{{- $keys = append $keys "ORDERS_IMAGE_URL_SECRET" -}}
{{- if eq $v.payment.provider "stripe" -}}
{{- $keys = concat $keys (list "STRIPE_SECRET_KEY" "STRIPE_WEBHOOK_SECRET") -}}
{{- end -}}
{{- if $v.payment.ordersWebhookUrl -}}
{{- $keys = append $keys "ORDERS_WEBHOOK_SECRET" -}}
{{- end -}}
{{- end -}}
{{- if and $c.generation.enabled (eq $v.generation.imageProvider "openai") -}}
{{- $keys = append $keys "OPENAI_API_KEY" -}}
{{- end -}}
{{- if $v.secrets.mongoUrl -}}
{{- $keys = append $keys "MONGO_URL" -}}
{{- end -}}
{{- if $c.limiter.enabled -}}
{{- if $v.secrets.redisUrl -}}
{{- $keys = append $keys "REDIS_URL" -}}
{{- end -}}
{{- with $v.redis.passwordSecretKey -}}
{{- $keys = append $keys . -}}
{{- end -}}
{{- end -}}
{{- $sasl := toString $v.kafka.sasl -}}
{{- if and (ne $sasl "oauthbearer") (ne $sasl "none") -}}
{{- $services := list -}}
{{- range $name, $component := $c -}}
{{- if and $component.enabled (eq (include "taituri.usesKafka" $name) "true") -}}
{{- $services = append $services (include "taituri.serviceOf" $name) -}}
{{- end -}}
{{- end -}}
{{- range $service := $services | uniq | sortAlpha -}}
{{- $keys = append $keys (printf "KAFKA_SASL_PASSWORD_%s" (upper $service)) -}}
{{- end -}}
{{- end -}}
{{- toJson $keys -}}
{{- end -}}

{{- /* The port a component's /healthz, /readyz and /metrics answer on: opsPort where it has one, else httpPort. */ -}}
{{- define "taituri.opsPort" -}}
{{- if hasKey . "opsPort" }}{{ .opsPort }}{{ else }}{{ .httpPort }}{{ end -}}
{{- end -}}

{{/*
Values the chart refuses to render, all at once, each followed by the value that sets it: an
install fails here rather than in a crash-looping pod.

Outside environment "local" every service refuses to start on a development default
(docs/security.md). The chart refuses those its values show, in the services' own words; Kafka
without a login (kafka.sasl none), which no service can see for itself: the paid requests would be
writable by anyone who reaches the brokers; a payment.publicUrl that shoppers could not reach; and
credentials written into values (secrets.inline), which would sit in the release's history.

In any environment: Kafka and Redis settings that do not fit together, in the words of the
services' own check (packages/config/src/connections.ts); a generation grace period that would
kill a paid image call mid-way, and a dispatcher's that would kill a send; the webhook without
the dispatcher (messages taken, never answered; the dispatcher without the webhook is a release
that only sends, and runs as ingress's ServiceAccount all the same); and the WhatsApp simulator
without the ingress it would play Meta towards.
*/}}
{{- define "taituri.refuseInvalidValues" -}}
{{- $env := .Values.environment -}}
{{- $c := .Values.components -}}
{{- $problems := list -}}
{{- $kafkaEnabled := false -}}
{{- range $name, $component := $c -}}
{{- if and $component.enabled (eq (include "taituri.usesKafka" $name) "true") -}}
{{- $kafkaEnabled = true -}}
{{- end -}}
{{- end -}}
{{- $kafka := .Values.kafka -}}
{{- $sasl := toString $kafka.sasl -}}
{{- $redis := .Values.redis -}}
{{- if ne $env "local" -}}
{{- $in := printf " (DEPLOYMENT_ENVIRONMENT=%s)" $env -}}
{{- if and $c.payment.enabled (eq .Values.payment.provider "local") -}}
{{- $problems = append $problems (printf "PAYMENT_PROVIDER: the local provider, whose checkout page charges nothing; set PAYMENT_PROVIDER=stripe%s [payment.provider]" $in) -}}
{{- end -}}
{{- if and $c.generation.enabled (eq .Values.generation.imageProvider "local") -}}
{{- $problems = append $problems (printf "IMAGE_PROVIDER: the local provider, whose designs are placeholders; set IMAGE_PROVIDER=openai%s [generation.imageProvider]" $in) -}}
{{- end -}}
{{- /* localhost, *.localhost, 127.0.0.0/8, 0.0.0.0, [::1], [::]: only a development issuer runs there. */ -}}
{{- $loopback := `^[A-Za-z][A-Za-z0-9+.-]*://([^/@]*@)?(?i:localhost|[^/?#:@]*\.localhost|127\.[0-9]+\.[0-9]+\.[0-9]+|0\.0\.0\.0|\[::1?\])\.?(:[0-9]*)?([/?#].*)?$` -}}
{{- range $name := list "generation" "limiter" "payment" -}}
{{- if and (index $c $name).enabled (regexMatch $loopback (index $.Values $name).oidcIssuerUrl) -}}
{{- $problems = append $problems (printf "OIDC_ISSUER_URL: a loopback issuer (a development one on this machine); set the issuer of your deployment's tokens (in Kubernetes, the API server's service-account issuer)%s [%s.oidcIssuerUrl]" $in $name) -}}
{{- end -}}
{{- end -}}
{{- if $c.payment.enabled -}}
{{- $publicUrl := toString .Values.payment.publicUrl -}}
{{- if not $publicUrl -}}
{{- $problems = append $problems (printf "PAYMENT_PUBLIC_URL is required: the https base URL shoppers' browsers reach checkout at (the host of ingress.hosts.payment or gateway's), else checkout links name the pod's own address%s [payment.publicUrl]" $in) -}}
{{- else if or (regexMatch $loopback $publicUrl) (not (hasPrefix "https://" $publicUrl)) -}}
{{- $problems = append $problems (printf "PAYMENT_PUBLIC_URL: %s is not an https URL shoppers can reach; set the public https base URL of checkout%s [payment.publicUrl]" $publicUrl $in) -}}
{{- end -}}
{{- end -}}
{{- if .Values.secrets.inline -}}
{{- $problems = append $problems (printf "secrets.inline holds %s: credentials in values end up in the release's history; put them in a Secret of your own and name it in secrets.name (or secrets.refs)%s [secrets.inline]" (keys .Values.secrets.inline | sortAlpha | join ", ") $in) -}}
{{- end -}}
{{- if $kafkaEnabled -}}
{{- if and $kafka.tls.enabled (eq (toString $kafka.tls.rejectUnauthorized) "false") -}}
{{- $problems = append $problems (printf "KAFKA_SSL_REJECT_UNAUTHORIZED: certificate checks off; set KAFKA_SSL_CA_FILE to the CA of the brokers' certificates%s [kafka.tls.rejectUnauthorized]" $in) -}}
{{- end -}}
{{- if and (eq $sasl "none") (ne (toString $kafka.allowUnauthenticated) "true") -}}
{{- $problems = append $problems (printf "KAFKA_SASL_MECHANISM unset (kafka.sasl none): no service logs in, so no ACL can tell them apart and anyone who reaches the brokers can write the paid requests (generation and payment requests, work the shop pays for); set kafka.sasl oauthbearer (each pod's service-account token), scram-sha-256, scram-sha-512 or plain, or kafka.allowUnauthenticated true if nothing but these pods can reach the brokers%s [kafka.sasl]" $in) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* Every credential a pod reads must come from a Secret someone named. */ -}}
{{- if not .Values.secrets.name -}}
{{- $unnamed := list -}}
{{- range $key := (include "taituri.requiredSecrets" . | fromJsonArray) -}}
{{- $ref := index ($.Values.secrets.refs | default dict) $key | default dict -}}
{{- if and (not $ref.secret) (not (and (eq $env "local") (hasKey ($.Values.secrets.inline | default dict) $key))) -}}
{{- $unnamed = append $unnamed $key -}}
{{- end -}}
{{- end -}}
{{- if $unnamed -}}
{{- $problems = append $problems (printf "no Secret named for %s: create one (kubectl create secret generic …) and set secrets.name, or secrets.refs.<KEY>.secret for each [secrets.name]" (join ", " $unnamed)) -}}
{{- end -}}
{{- end -}}
{{- if $kafkaEnabled -}}
{{- $mechanisms := list "oauthbearer" "scram-sha-256" "scram-sha-512" "plain" "none" -}}
{{- if not (has $sasl $mechanisms) -}}
{{- $problems = append $problems (printf "KAFKA_SASL_MECHANISM: %s is none of %s [kafka.sasl]" $sasl (join ", " $mechanisms)) -}}
{{- else if and (ne $sasl "oauthbearer") (ne $sasl "none") -}}
{{- $unnamed := list -}}
{{- range $name, $component := $c -}}
{{- $service := include "taituri.serviceOf" $name -}}
{{- if and $component.enabled (eq (include "taituri.usesKafka" $name) "true") (not (index ($kafka.usernames | default dict) $service)) -}}
{{- $unnamed = append $unnamed $service -}}
{{- end -}}
{{- end -}}
{{- range $service := $unnamed | uniq | sortAlpha -}}
{{- $problems = append $problems (printf "KAFKA_SASL_USERNAME is required by KAFKA_SASL_MECHANISM=%s [kafka.usernames.%s]" $sasl $service) -}}
{{- end -}}
{{- end -}}
{{- if and $kafka.tls.caSecret (not $kafka.tls.enabled) -}}
{{- $problems = append $problems "KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not true [kafka.tls.caSecret]" -}}
{{- end -}}
{{- end -}}
{{- if $c.limiter.enabled -}}
{{- if and $redis.username (not $redis.passwordSecretKey) -}}
{{- $problems = append $problems "REDIS_PASSWORD or REDIS_PASSWORD_FILE is required by REDIS_USERNAME [redis.passwordSecretKey]" -}}
{{- end -}}
{{- if and $redis.tls.caSecret (not $redis.tls.enabled) (not (hasPrefix "rediss:" $redis.url)) (not .Values.secrets.redisUrl) -}}
{{- $problems = append $problems "REDIS_TLS_CA_FILE is set but neither REDIS_TLS nor a rediss:// REDIS_URL asks for TLS [redis.tls.caSecret]" -}}
{{- end -}}
{{- end -}}
{{- range $name, $component := $c -}}
{{- if and $component.enabled (lt (int $component.terminationGracePeriodSeconds) 1) -}}
{{- $problems = append $problems (printf "terminationGracePeriodSeconds: %v is not a positive number of seconds [components.%s.terminationGracePeriodSeconds]" $component.terminationGracePeriodSeconds $name) -}}
{{- end -}}
{{- if and $component.enabled (hasKey $component "opsPort") (eq (int $component.opsPort) (int $component.httpPort)) -}}
{{- $problems = append $problems (printf "%s: must differ from %s (%v): the ops endpoints have a listener of their own [components.%s.opsPort]" $component.opsPortEnv $component.portEnv $component.httpPort $name) -}}
{{- end -}}
{{- end -}}
{{- if $c.generation.enabled -}}
{{- $drainMs := int (.Values.generation.drainMs | default .Values.generation.leaseMs) -}}
{{- if le (mul (int $c.generation.terminationGracePeriodSeconds) 1000) (add $drainMs 10000) -}}
{{- $problems = append $problems (printf "terminationGracePeriodSeconds: %d s is not more than GENERATION_DRAIN_MS (%d ms; generation.leaseMs when drainMs is empty) + 10 s to leave the consumer group: a rollout would kill a paid image call mid-way and its take-over pay again; raise it, or lower generation.drainMs to have calls cancelled and handed back [components.generation.terminationGracePeriodSeconds]" (int $c.generation.terminationGracePeriodSeconds) $drainMs) -}}
{{- end -}}
{{- end -}}
{{- if $c.dispatcher.enabled -}}
{{- /* GRAPH_API_TIMEOUT_MS's default: the chart does not set it. */ -}}
{{- $sendMs := mul 2 10000 -}}
{{- if le (mul (int $c.dispatcher.terminationGracePeriodSeconds) 1000) (add $sendMs 10000) -}}
{{- $problems = append $problems (printf "terminationGracePeriodSeconds: %d s is not more than twice GRAPH_API_TIMEOUT_MS (10000 ms: a send, and its resend to the phone number) + 10 s to leave the consumer groups: a rollout would kill a send mid-way, and its take-over could send the shopper the message twice; raise it [components.dispatcher.terminationGracePeriodSeconds]" (int $c.dispatcher.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- range $port := list "httpPort" "portEnv" "grpcPort" "grpcPortEnv" -}}
{{- if hasKey $c.dispatcher $port -}}
{{- $problems = append $problems (printf "%s: the dispatcher (INGRESS_ROLE=dispatcher) listens on nothing but its opsPort; unset it [components.dispatcher.%s]" $port $port) -}}
{{- end -}}
{{- end -}}
{{- if $c.dispatcher.serviceAccountAnnotations -}}
{{- $problems = append $problems "serviceAccountAnnotations: the dispatcher runs as ingress's ServiceAccount (its Kafka principal), whose annotations are components.ingress's: set them there [components.dispatcher.serviceAccountAnnotations]" -}}
{{- end -}}
{{- else if $c.ingress.enabled -}}
{{- $problems = append $problems "INGRESS_ROLE: the webhook (components.ingress) without the dispatcher that sends the conversation's replies: shoppers' messages would be taken and never answered; enable components.dispatcher [components.dispatcher.enabled]" -}}
{{- end -}}
{{- if and .Values.simulator.enabled (not $c.ingress.enabled) -}}
{{- $problems = append $problems "SIMULATOR_WEBHOOK_URL: no ingress in this release for the WhatsApp simulator to send its webhooks to; enable components.ingress, or leave the simulator off [simulator.enabled]" -}}
{{- end -}}
{{- if and .Values.ingress.enabled .Values.gateway.enabled -}}
{{- $problems = append $problems "ingress.enabled and gateway.enabled both route the same paths: choose one [gateway.enabled]" -}}
{{- end -}}
{{- if $problems -}}
{{- fail (printf "Invalid configuration:\n  %s" (join "\n  " $problems)) -}}
{{- end -}}
{{- end -}}

{{/*
A component's Kafka connection (dict "root" $ "name" <component>): brokers, prefix, TLS, and its own
login (its service account's token for OAUTHBEARER, else its username and password). Also the
topics Job's, which logs in as the conversation.
*/}}
{{- define "taituri.kafkaEnv" -}}
{{- with .root.Values.kafka }}
- name: KAFKA_BROKERS
  value: {{ .brokers | quote }}
- name: KAFKA_TOPIC_PREFIX
  value: {{ .topicPrefix | quote }}
- name: KAFKA_PARTITIONS
  value: {{ .partitions | quote }}
- name: KAFKA_SSL
  value: {{ .tls.enabled | toString | quote }}
{{- if .tls.enabled }}
- name: KAFKA_SSL_REJECT_UNAUTHORIZED
  value: {{ .tls.rejectUnauthorized | toString | quote }}
{{- if .tls.caSecret }}
- name: KAFKA_SSL_CA_FILE
  value: /var/run/secrets/kafka-ca/ca.crt
{{- end }}
{{- end }}
{{- if eq (toString .sasl) "oauthbearer" }}
# This pod's service-account token for the brokers' audience: Kafka's principal is its
# sub, system:serviceaccount:<namespace>:<fullname>-<component>.
- name: KAFKA_SASL_MECHANISM
  value: oauthbearer
- name: KAFKA_OAUTH_TOKEN_FILE
  value: /var/run/secrets/kafka/token
{{- else if ne (toString .sasl) "none" }}
- name: KAFKA_SASL_MECHANISM
  value: {{ .sasl | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ index .usernames $.name | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom: {{ include "taituri.secretRef" (dict "root" $.root "key" (printf "KAFKA_SASL_PASSWORD_%s" (upper $.name))) }}
{{- else if eq (toString .allowUnauthenticated) "true" }}
# No login, said aloud: the services refuse Kafka without one outside local otherwise.
- name: KAFKA_ALLOW_UNAUTHENTICATED
  value: "true"
{{- end }}
{{- end }}
{{- end -}}
