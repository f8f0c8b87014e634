// Realistic objects, as the API server returns them, with members the model does not know at every level.
// No modelled field is null here: a null modelled field reads as absent (see `nullModelledFieldReadsAsAbsent`).

enum Fixtures {
    static let pod = #"""
        {
          "apiVersion": "v1",
          "kind": "Pod",
          "x-unknown-top-level": {"kept": [1, 2.5, "three", null, true]},
          "metadata": {
            "name": "web-7d9f8c6b5-abcde",
            "generateName": "web-7d9f8c6b5-",
            "namespace": "shop",
            "uid": "3f1c2b9e-7c1d-4a0e-9a7e-0d5b6c1f2e3a",
            "resourceVersion": "918273",
            "creationTimestamp": "2024-11-20T09:14:03Z",
            "labels": {"app": "web", "pod-template-hash": "7d9f8c6b5"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-11-20T09:00:00Z"},
            "ownerReferences": [
              {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5",
               "uid": "fb499e75-a531-4beb-8902-e7521f3c67db", "controller": true, "blockOwnerDeletion": true}
            ],
            "managedFields": [
              {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
               "time": "2024-11-20T09:14:03Z", "fieldsType": "FieldsV1",
               "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}}}}}
            ]
          },
          "spec": {
            "affinity": {
              "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                  {"weight": 100,
                   "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}},
                                       "topologyKey": "kubernetes.io/hostname"}}
                ]
              }
            },
            "tolerations": [
              {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
               "tolerationSeconds": 300}
            ],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "priority": 0,
            "enableServiceLinks": true,
            "serviceAccountName": "web",
            "nodeName": "ip-10-0-1-17.ec2.internal",
            "terminationGracePeriodSeconds": 30,
            "securityContext": {"runAsNonRoot": true, "fsGroup": 2000, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [
              {"name": "migrate", "image": "ghcr.io/example/migrate:2", "command": ["/migrate", "--up"],
               "workingDir": "/app", "terminationMessagePolicy": "FallbackToLogsOnError"}
            ],
            "containers": [
              {
                "name": "web",
                "image": "ghcr.io/example/web:1.4.2",
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP", "hostIP": "0.0.0.0"}],
                "env": [
                  {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                  {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password", "optional": false}}},
                  {"name": "LOG_LEVEL", "value": "info"}
                ],
                "envFrom": [{"configMapRef": {"name": "web-env"}}],
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
                "resources": {
                  "requests": {"cpu": "100m", "memory": "128Mi"},
                  "limits": {"cpu": 2, "memory": "256Mi"},
                  "claims": [{"name": "gpu"}]
                },
                "volumeMounts": [
                  {"name": "data", "mountPath": "/data", "mountPropagation": "None"},
                  {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                   "readOnly": true}
                ],
                "readinessProbe": {
                  "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP",
                              "httpHeaders": [{"name": "X-Probe", "value": "1"}], "x-unknown": 1},
                  "periodSeconds": 5,
                  "terminationGracePeriodSeconds": 10
                },
                "livenessProbe": {"tcpSocket": {"port": 8080, "x-unknown": "tcp"}, "initialDelaySeconds": 10},
                "securityContext": {
                  "allowPrivilegeEscalation": false,
                  "capabilities": {"drop": ["ALL"]},
                  "seccompProfile": {"type": "RuntimeDefault"}
                },
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
              },
              {
                "name": "metrics",
                "image": "ghcr.io/example/metrics:0.9",
                "ports": [{"containerPort": 9090, "hostIP": "127.0.0.1"}],
                "stdin": false,
                "tty": false
              }
            ],
            "volumes": [
              {"name": "data", "csi": {"driver": "ebs.csi.aws.com", "volumeAttributes": {"type": "gp3"}}},
              {"name": "cache", "emptyDir": {"sizeLimit": "1Gi", "medium": "Memory"}},
              {"name": "kube-api-access-x7k2p",
               "projected": {"defaultMode": 420, "sources": [
                 {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                 {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
               ]}}
            ]
          },
          "status": {
            "phase": "Running",
            "hostIP": "10.0.1.17",
            "hostIPs": [{"ip": "10.0.1.17"}],
            "podIP": "10.244.1.12",
            "podIPs": [{"ip": "10.244.1.12"}],
            "qosClass": "Burstable",
            "startTime": "2024-11-20T09:14:03Z",
            "conditions": [
              {"type": "Ready", "status": "True", "lastTransitionTime": "2024-11-20T09:14:09Z"}
            ],
            "containerStatuses": [
              {"name": "web", "ready": true, "started": true, "restartCount": 0,
               "image": "ghcr.io/example/web:1.4.2",
               "imageID": "ghcr.io/example/web@sha256:0f3c", "containerID": "containerd://5a1b",
               "state": {"running": {"startedAt": "2024-11-20T09:14:05Z"}}}
            ]
          }
        }
        """#

    static let service = #"""
        {
          "apiVersion": "v1",
          "kind": "Service",
          "metadata": {
            "name": "web", "namespace": "shop", "uid": "01a57574-8ff9-4c94-859c-df3444ca2571",
            "labels": {"app": "web"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {}}]
          },
          "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.12.40",
            "clusterIPs": ["10.96.12.40"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
            "sessionAffinity": "None",
            "selector": {"app": "web"},
            "ports": [
              {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "appProtocol": "http"},
              {"name": "grpc", "port": 9090, "targetPort": "grpc", "protocol": "TCP", "x-unknown-port-field": [1]}
            ]
          },
          "status": {"loadBalancer": {}}
        }
        """#

    static let deployment = #"""
        {
          "apiVersion": "apps/v1",
          "kind": "Deployment",
          "metadata": {
            "name": "web", "namespace": "shop", "generation": 3,
            "annotations": {"deployment.kubernetes.io/revision": "2"},
            "managedFields": [{"manager": "kubectl", "operation": "Update"}]
          },
          "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
              "metadata": {"labels": {"app": "web"}, "annotations": {"weft.dev/inject": "enabled"}},
              "spec": {
                "dnsPolicy": "ClusterFirst",
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
                "containers": [
                  {"name": "web", "image": "ghcr.io/example/web:1.4.2",
                   "ports": [{"name": "http", "containerPort": 8080, "hostIP": "0.0.0.0"}],
                   "lifecycle": {"postStart": {"exec": {"command": ["/bin/true"]}}}}
                ],
                "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}}]
              }
            }
          },
          "status": {
            "observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]
          }
        }
        """#

    static let endpointSlice = #"""
        {
          "apiVersion": "discovery.k8s.io/v1",
          "kind": "EndpointSlice",
          "metadata": {
            "name": "web-k7x2q", "generateName": "web-", "namespace": "shop",
            "labels": {"kubernetes.io/service-name": "web",
                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]
          },
          "addressType": "IPv4",
          "endpoints": [
            {"addresses": ["10.244.1.12"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "nodeName": "ip-10-0-1-17.ec2.internal", "zone": "us-east-1a",
             "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-7d9f8c6b5-abcde",
                           "uid": "3f1c2b9e-7c1d-4a0e-9a7e-0d5b6c1f2e3a"},
             "hints": {"forZones": [{"name": "us-east-1a"}]}}
          ],
          "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
          "x-unknown-top-level": "kept"
        }
        """#

    static let namespace = #"""
        {
          "apiVersion": "v1",
          "kind": "Namespace",
          "metadata": {
            "name": "shop", "uid": "a5b1c7d2-0000-4000-8000-000000000001",
            "labels": {"kubernetes.io/metadata.name": "shop", "weft.dev/inject": "enabled"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
          },
          "spec": {"finalizers": ["kubernetes"]},
          "status": {"phase": "Active"}
        }
        """#

    static let configMap = #"""
        {
          "apiVersion": "v1",
          "kind": "ConfigMap",
          "metadata": {"name": "weft-config", "namespace": "weft-system", "managedFields": [{"manager": "helm"}]},
          "data": {"trustDomain": "example.org", "defaultTLSMode": "STRICT"},
          "binaryData": {"blob": "AAECAw=="},
          "immutable": false,
          "x-unknown-top-level": {"a": {"b": {"c": []}}}
        }
        """#

    static let secret = #"""
        {
          "apiVersion": "v1",
          "kind": "Secret",
          "metadata": {"name": "db", "namespace": "shop", "annotations": {"kubernetes.io/description": "db creds"},
                       "managedFields": [{"manager": "kubectl"}]},
          "type": "Opaque",
          "data": {"password": "aHVudGVyMg=="},
          "x-unknown-top-level": 42
        }
        """#

    static let lease = #"""
        {
          "apiVersion": "coordination.k8s.io/v1",
          "kind": "Lease",
          "metadata": {"name": "weft-controller", "namespace": "weft-system", "resourceVersion": "77",
                       "managedFields": [{"manager": "weft-controller"}]},
          "spec": {
            "holderIdentity": "weft-controller-6c9f-1",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-11-20T09:14:03.000000Z",
            "renewTime": "2024-11-20T09:20:33.123456Z",
            "leaseTransitions": 4,
            "strategy": "OldestEmulationVersion",
            "preferredHolder": "weft-controller-6c9f-2"
          },
          "x-unknown-top-level": true
        }
        """#

    static let event = #"""
        {
          "apiVersion": "v1",
          "kind": "Event",
          "metadata": {"name": "catalog.17f8a9b3c4d5e6f7", "namespace": "shop",
                       "managedFields": [{"manager": "weft-controller"}]},
          "involvedObject": {"apiVersion": "weft.dev/v1alpha1", "kind": "VirtualService", "namespace": "shop",
                             "name": "catalog", "uid": "7e1f", "resourceVersion": "12"},
          "reason": "BackendNotFound",
          "message": "spec.http[0].route[0].destination.host: no Service \"catalgo\" in shop",
          "type": "Warning",
          "source": {"component": "weft-controller"},
          "count": 3,
          "firstTimestamp": "2024-11-20T09:14:03Z",
          "lastTimestamp": "2024-11-20T09:15:03Z",
          "reportingComponent": "weft-controller",
          "reportingInstance": "weft-controller-6c9f-1",
          "series": {"count": 2, "lastObservedTime": "2024-11-20T09:15:03.000000Z"},
          "related": {"kind": "Service", "name": "catalog"}
        }
        """#

    /// The object is kept raw: its members (a `null`, an int64, a float) come back exactly.
    static let admissionReview = #"""
        {
          "apiVersion": "admission.k8s.io/v1",
          "kind": "AdmissionReview",
          "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "UPDATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "uid": "b2f8", "groups": ["system:serviceaccounts", "system:authenticated"],
                         "extra": {"authentication.kubernetes.io/pod-name": ["kcm-0"]}},
            "object": {
              "apiVersion": "v1", "kind": "Pod",
              "metadata": {"generateName": "web-7d9f8c6b5-", "namespace": "shop", "creationTimestamp": null,
                           "labels": {"app": "web"}},
              "spec": {"containers": [{"name": "web", "image": "web:1", "resources": {}}],
                       "priority": 9223372036854775807, "overhead": {"cpu": 0.25}},
              "status": {}
            },
            "oldObject": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-old"}, "spec": {"containers": []}},
            "dryRun": false,
            "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-edit"}
          }
        }
        """#

    static let tokenReview = #"""
        {
          "apiVersion": "authentication.k8s.io/v1",
          "kind": "TokenReview",
          "metadata": {"creationTimestamp": "2024-11-20T09:14:03Z", "managedFields": [{"manager": "x"}]},
          "spec": {"token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "audiences": ["weft"]},
          "status": {
            "authenticated": true,
            "user": {"username": "system:serviceaccount:shop:web", "uid": "3f1c",
                     "groups": ["system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"],
                     "extra": {"authentication.kubernetes.io/pod-name": ["web-7d9f8c6b5-abcde"]}},
            "audiences": ["weft"]
          }
        }
        """#
}
