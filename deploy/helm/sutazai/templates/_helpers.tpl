{{/* The release's name prefix, at most 63 characters with the longest role suffix. */}}
{{- define "sutazai.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sutazai.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Every pod of this release. */}}
{{- define "sutazai.releaseSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The pods of one role: (dict "root" $ "name" $name). */}}
{{- define "sutazai.roleSelector" -}}
{{ include "sutazai.releaseSelector" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "sutazai.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-secrets" (include "sutazai.fullname" .)) -}}
{{- end -}}

{{- define "sutazai.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The in-cluster URL of a role: (dict "root" $ "name" "auth"). */}}
{{- define "sutazai.roleUrl" -}}
{{- $role := index .root.Values.roles .name -}}
{{- printf "http://%s-%s:%v" (include "sutazai.fullname" .root) .name $role.port -}}
{{- end -}}

{{/*
The pod template of one role, shared by the Deployments and the vector StatefulSet:
(dict "root" $ "name" $name "role" $role).
*/}}
{{- define "sutazai.podTemplate" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $role := .role -}}
metadata:
  labels:
    {{- include "sutazai.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $name }}
  annotations:
    # A changed configuration rolls the pods.
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ $role.terminationGracePeriodSeconds | default 30 }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($role.nodeSelector | default $root.Values.nodeSelector) }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ $name }}
      image: {{ include "sutazai.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: ["serve", {{ $name | quote }}]
      ports:
        - name: http
          containerPort: {{ $role.port }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "sutazai.fullname" $root }}-config
        - secretRef:
            name: {{ include "sutazai.secretName" $root }}
      startupProbe:
        httpGet:
          path: /livez
          port: http
        periodSeconds: 5
        failureThreshold: {{ $role.startupFailureThreshold | default 24 }}
      livenessProbe:
        httpGet:
          path: /livez
          port: http
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 3
      resources:
        {{- toYaml $role.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if or (eq $name "vector") (eq $name "hardware") }}
        - name: data
          mountPath: /var/lib/sutazai/{{ $name }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {}
    {{- if eq $name "hardware" }}
    - name: data
      {{- if $role.hostPath }}
      hostPath:
        path: {{ $role.hostPath }}
        type: Directory
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
{{- end -}}
