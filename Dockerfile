# Airflow image for the Zoom Video SDK QoS pipeline: the official image plus requirements.txt.
#
#   docker compose build            (docker-compose.yaml builds it as ${AIRFLOW_IMAGE_NAME})
#
# requirements.txt pins every runtime dependency (checked to resolve together), so it is
# installed without Airflow's constraints file; apache-airflow itself is pinned in it to the
# version of the base image, which stops pip from up- or downgrading Airflow.
# dags/, plugins/ and include/ are mounted by docker-compose; the project is installed editable
# at the path plugins/ is mounted on, so the mounted code is what runs and Airflow still finds
# its provider entry point (the zoom_videosdk connection type and its labels in the UI).
ARG AIRFLOW_BASE_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_BASE_IMAGE}

# Folders that back named volumes: a new named volume takes the owner of the image folder,
# so creating them here (owned by airflow, group 0) keeps them writable for the airflow user.
USER root
RUN mkdir -p /opt/airflow/staging /opt/airflow/data /opt/airflow/auth \
    && chown -R airflow:0 /opt/airflow/staging /opt/airflow/data /opt/airflow/auth \
    && chmod -R g+rwX /opt/airflow/staging /opt/airflow/data /opt/airflow/auth
USER airflow

COPY --chown=airflow:0 requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt

COPY --chown=airflow:0 pyproject.toml setup.py README.md LICENSE /opt/airflow/
COPY --chown=airflow:0 plugins/zoom_qos /opt/airflow/plugins/zoom_qos
RUN pip install --no-cache-dir --no-deps -e /opt/airflow
