"""The statuses a tracking_job and a tracking_batch can be in, named once.

They are ``StrEnum`` members: each is the very string stored in the table (and compares
equal to it), so statements, metrics labels and JSON take them as they are.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    #: made by a selection pass or a manual request; its candidate.found may be in flight
    QUEUED = "queued"
    #: in a pack whose create call is about to be made, or may have been made
    PUBLISHING = "publishing"
    #: its scraping job exists; the ingestor ends it when the job has ended
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class BatchStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    PARTIAL = "partial"


JOB_STATUSES = tuple(JobStatus)
#: A job in one of these states has not ended: its purchase is not selected again.
IN_FLIGHT = (JobStatus.QUEUED, JobStatus.PUBLISHING, JobStatus.PENDING)
#: ...and in these it has no scraping job yet
UNPUBLISHED = (JobStatus.QUEUED, JobStatus.PUBLISHING)
ENDED = (JobStatus.COMPLETED, JobStatus.FAILED)

BATCH_STATUSES = tuple(BatchStatus)
FINAL_BATCH_STATUSES = (BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.PARTIAL)
