"""gRPC servicer of the identity service: protobuf in, resolver call, protobuf out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from omnicdp.api.identity.v1 import identity_pb2, identity_pb2_grpc
from omnicdp.core import protoconv
from omnicdp.core.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from omnicdp.core.identifiers import NO_BLOCKED_VALUES, BlockedValues
from omnicdp.core.server import Registration, ServiceHost
from omnicdp.core.tracking import tracking_uri
from omnicdp.core.vocabulary import IDENTIFIER_TYPES
from omnicdp.services.identity import convert
from omnicdp.services.identity.linkage.model import LinkageModel, Score
from omnicdp.services.identity.linkage.registry import load_serving, serving_version
from omnicdp.services.identity.matching import REVIEW_BAND, Matcher
from omnicdp.services.identity.model import LinkedCustomer, StoredRecord
from omnicdp.services.identity.resolver import Resolver
from omnicdp.services.identity.settings import Settings
from omnicdp.services.identity.store import IdentityStore, open_store
from omnicdp.services.identity.store.graph import StoredCandidate

log = logging.getLogger(__name__)

MAX_CHANGES_PAGE = 10_000
DEFAULT_CHANGES_PAGE = 1000
# How often a watch looks for changes committed by other replicas of this service.
WATCH_POLL_SECONDS = 1.0
MAX_REVIEW_PAGE = 1000
DEFAULT_REVIEW_PAGE = 100

ModelLoader = Callable[[], LinkageModel]


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, store: IdentityStore, resolver: Resolver,
                 load_model: ModelLoader | None = None) -> None:
        self._store = store
        self._resolver = resolver
        self._load_model = load_model
        self._committed = threading.Condition()
        self._reloading = threading.Lock()

    def ResolveIdentities(self, request, context):  # noqa: N802 (generated name)
        batch = self._resolver.resolve_batch([convert.record_from_proto(r)
                                              for r in request.records])
        self._notify()
        # Every id ever merged into the customer, not only this record's merges (see proto).
        merged = self._store.merged_customer_ids_of(
            sorted({r.customer_id for r in batch.resolutions if r.customer_id}))
        return identity_pb2.ResolveIdentitiesResponse(resolutions=[
            convert.resolution_to_proto(replace(r, merged_customer_ids=tuple(
                merged.get(r.customer_id, ()) if r.customer_id else ())))
            for r in batch.resolutions], change_seq=batch.change_seq)

    def _customer(self, customer_id: str) -> identity_pb2.Customer:
        return convert.customer_to_proto(LinkedCustomer(
            customer_id, self._store.customer_identifiers(customer_id),
            tuple(self._store.merged_customer_ids(customer_id))))

    def LookupCustomer(self, request, context):  # noqa: N802
        id_type = protoconv.identifier_type_name(request.type)
        if id_type not in IDENTIFIER_TYPES:
            raise InvalidArgument("identifier type is required",
                                  [FieldViolation("type", f"one of {', '.join(IDENTIFIER_TYPES)}")])
        customer_id = self._resolver.lookup(id_type, request.value)
        if customer_id is None:
            raise NotFound(f"no customer has this {id_type}", reason="CUSTOMER_NOT_FOUND")
        return identity_pb2.LookupCustomerResponse(customer=self._customer(customer_id))

    def GetCustomer(self, request, context):  # noqa: N802
        customer_id = self._store.resolve_redirects(request.customer_id)
        if customer_id is None:
            raise NotFound(f"no customer {request.customer_id}", reason="CUSTOMER_NOT_FOUND",
                           metadata={"customer_id": request.customer_id})
        return identity_pb2.GetCustomerResponse(customer=self._customer(customer_id))

    def ListChanges(self, request, context):  # noqa: N802
        if request.after_seq < 0:
            raise InvalidArgument("after_seq must not be negative",
                                  [FieldViolation("after_seq", "0 or a sequence number")])
        if request.page_size < 0:
            raise InvalidArgument("page_size must not be negative",
                                  [FieldViolation("page_size", f"0 to {MAX_CHANGES_PAGE}")])
        size = min(request.page_size or DEFAULT_CHANGES_PAGE, MAX_CHANGES_PAGE)
        last_seq = self._store.last_change_seq()
        changes = self._store.changes(request.after_seq, size)
        return identity_pb2.ListChangesResponse(
            changes=[convert.change_to_proto(c) for c in changes], last_seq=last_seq)

    def Unmerge(self, request, context):  # noqa: N802
        if not request.record_ids:
            raise InvalidArgument("record_ids is required", [
                FieldViolation("record_ids", "the records of one part of the customer")])
        if not request.actor or not request.reason:
            raise InvalidArgument("actor and reason are required: they stay on the revoked "
                                  "links", [FieldViolation(f, "required")
                                            for f in ("actor", "reason")
                                            if not getattr(request, f)])
        result = self._store.unmerge(request.customer_id, list(request.record_ids),
                                     request.actor, request.reason)
        self._notify()
        return identity_pb2.UnmergeResponse(
            kept_customer_id=result.kept_customer_id, new_customer_id=result.new_customer_id,
            moved_record_ids=result.moved_record_ids, change_seq=result.change_seq)

    def ExplainCustomer(self, request, context):  # noqa: N802
        customer_id = self._store.resolve_redirects(request.customer_id)
        if customer_id is None:
            raise NotFound(f"no customer {request.customer_id}", reason="CUSTOMER_NOT_FOUND",
                           metadata={"customer_id": request.customer_id})
        records = self._store.records_of(customer_id)
        links = self._store.links_of([r.record_id for r in records])
        return convert.explanation_to_proto(customer_id, records, links,
                                            self._store.merged_customer_ids(customer_id),
                                            self._store.separations_of(customer_id))

    def EraseCustomer(self, request, context):  # noqa: N802
        if not request.actor or not request.reason:
            raise InvalidArgument("actor and reason are required for the audit log", [
                FieldViolation(f, "required") for f in ("actor", "reason")
                if not getattr(request, f)])
        result = self._store.erase(request.customer_id, request.actor, request.reason)
        self._notify()
        return identity_pb2.EraseCustomerResponse(
            customer_id=result.customer_id, records_erased=result.records_erased,
            change_seq=result.change_seq)

    def ReloadModel(self, request, context):  # noqa: N802
        matcher = self._resolver.matcher
        if matcher is None or self._load_model is None:
            raise FailedPrecondition("this identity service links by rules only "
                                     "(--linking rules)", reason="MODEL_LINKING_OFF")
        with self._reloading:  # one load at a time; resolutions go on meanwhile
            model = self._load_model()
            previous = matcher.use(model)
        return identity_pb2.ReloadModelResponse(
            model_version=model.version or "", previous_version=previous.version or "",
            threshold=model.threshold)

    def _score(self, a: StoredRecord, b: StoredRecord) -> tuple[LinkageModel, Score]:
        """The serving model (the packaged one when linking by rules) and its score of two
        stored records."""
        matcher = self._resolver.matcher or Matcher(LinkageModel.load_default())
        model = matcher.model
        features = [matcher.features_of(StoredCandidate(
            r.record_id, r.customer_id, r.features,
            {t: values[0] for t, values in r.identifiers.items() if values})) for r in (a, b)]
        return model, model.score_pair(*features)

    def ExplainLink(self, request, context):  # noqa: N802
        missing = [FieldViolation(f, "a record id (rec_...)") for f in ("record_a", "record_b")
                   if not getattr(request, f)]
        if missing:
            raise InvalidArgument("two record ids are required", missing)
        records = {r.record_id: r for r in self._store.get_records(
            [request.record_a, request.record_b])}
        for field in ("record_a", "record_b"):
            if getattr(request, field) not in records:
                raise NotFound(f"no record {getattr(request, field)}",
                               reason="RECORD_NOT_FOUND", metadata={field: getattr(request,
                                                                                   field)})
        a, b = (records[request.record_a], records[request.record_b])
        model, score = self._score(a, b)
        links = [link for link in self._store.links_of([a.record_id])
                 if {link.record_a, link.record_b} == {a.record_id, b.record_id}]
        return identity_pb2.ExplainLinkResponse(
            model_version=model.version or "", prior_weight=model.prior_weight,
            weights=[identity_pb2.ComparisonWeight(comparison=w.comparison, level=w.level,
                                                   match_weight=w.match_weight)
                     for w in score.weights],
            match_weight=score.match_weight, match_probability=score.match_probability,
            threshold=model.threshold, same_customer=a.customer_id == b.customer_id,
            links=[convert.link_to_proto(link) for link in links])

    def ListReviewItems(self, request, context):  # noqa: N802
        band = (self._resolver.matcher.review_band if self._resolver.matcher is not None
                else REVIEW_BAND)
        low = request.min_probability or band[0]
        high = request.max_probability or band[1]
        problems = []
        if not 0 <= low < high <= 1:
            problems.append(FieldViolation("min_probability", "0 <= min < max <= 1"))
        if not 0 <= request.page_size <= MAX_REVIEW_PAGE:
            problems.append(FieldViolation("page_size", f"0 to {MAX_REVIEW_PAGE}"))
        if request.page_token and not request.page_token.isdigit():
            problems.append(FieldViolation("page_token", "a next_page_token of this call"))
        if problems:
            raise InvalidArgument("invalid review listing", problems)
        size = request.page_size or DEFAULT_REVIEW_PAGE
        offset = int(request.page_token or 0)
        items = self._store.review_items(low, high, size + 1, offset)
        return identity_pb2.ListReviewItemsResponse(
            items=[convert.review_item_to_proto(i) for i in items[:size]],
            next_page_token=str(offset + size) if len(items) > size else "")

    def ReviewLink(self, request, context):  # noqa: N802
        problems = [FieldViolation(f, "required") for f in ("record_a", "record_b", "actor",
                                                            "reason")
                    if not getattr(request, f)]
        if request.decision not in (identity_pb2.REVIEW_DECISION_ACCEPT,
                                    identity_pb2.REVIEW_DECISION_REJECT):
            problems.append(FieldViolation("decision", "ACCEPT or REJECT"))
        if problems:
            raise InvalidArgument("a review names two records, a decision, who and why",
                                  problems)
        accept = request.decision == identity_pb2.REVIEW_DECISION_ACCEPT
        probability = None
        if accept:
            records = self._store.get_records([request.record_a, request.record_b])
            if len(records) == 2:
                probability = self._score(*records)[1].match_probability
        result = self._store.review(request.record_a, request.record_b, accept,
                                    request.actor, request.reason, probability)
        self._notify()
        return identity_pb2.ReviewLinkResponse(customer_a=result.customer_a,
                                               customer_b=result.customer_b,
                                               change_seq=result.change_seq)

    def _notify(self) -> None:
        with self._committed:
            self._committed.notify_all()

    def WatchChanges(self, request, context) -> Iterator:  # noqa: N802
        cursor = request.after_seq
        while context.is_active():
            changes = self._store.changes(cursor, DEFAULT_CHANGES_PAGE)
            for change in changes:
                yield identity_pb2.WatchChangesResponse(change=convert.change_to_proto(change))
                cursor = change.seq
            if not changes:
                with self._committed:
                    self._committed.wait(WATCH_POLL_SECONDS)


def build(settings: Settings) -> ServiceHost:
    blocked = NO_BLOCKED_VALUES
    if settings.blocked_values:
        try:
            blocked = BlockedValues.parse(Path(settings.blocked_values).read_text("utf-8"),
                                          settings.blocked_values)
        except (OSError, UnicodeError, ValueError) as error:
            raise SystemExit(f"identity: --blocked-values / CDP_BLOCKED_VALUES: {error}") from None
    if settings.linking not in ("model", "rules"):
        raise SystemExit(f"identity: --linking / CDP_LINKING: {settings.linking!r} is not "
                         "one of model, rules")
    try:
        low, high = (float(x) for x in settings.review_band.split(","))
        if not 0 <= low < high <= 1:
            raise ValueError
    except ValueError:
        raise SystemExit("identity: --review-band / CDP_REVIEW_BAND: expected LOW,HIGH with "
                         "0 <= LOW < HIGH <= 1") from None
    load_model = None
    matcher = None
    poller = None
    if settings.linking == "model":
        uri = settings.tracking_uri or tracking_uri(settings.data_dir)

        def load_model() -> LinkageModel:
            return load_serving(uri)
        matcher = Matcher(load_model(), review_band=(low, high))
        if settings.model_poll_seconds > 0:
            poller = ChampionPoller(matcher, uri, settings.model_poll_seconds)
            poller.start()
    store = open_store(settings.database_url, settings.data_dir, settings.cache_customers,
                       settings.duckdb_memory)
    resolver = Resolver(store, default_region=settings.default_region,
                        placeholder_threshold=settings.placeholder_threshold,
                        blocked=blocked, matcher=matcher)
    return ServiceHost(
        "identity",
        [Registration(identity_pb2_grpc.add_IdentityServiceServicer_to_server,
                      IdentityServicer(store, resolver, load_model),
                      identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name)],
        settings.address, grace_seconds=settings.grace_seconds,
        on_stop=lambda: (poller.stop() if poller else None, store.close()))


class ChampionPoller:
    """Loads the champion when another version becomes it, so that every replica follows a
    promotion without a ``ReloadModel`` call reaching each of them."""

    def __init__(self, matcher: Matcher, uri: str, seconds: float) -> None:
        self._matcher, self._uri, self._seconds = matcher, uri, seconds
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._seconds):
            try:
                if serving_version(self._uri) != self._matcher.version:
                    model = load_serving(self._uri)
                    previous = self._matcher.use(model)
                    log.info("identity: serving model %s (was %s)", model.version,
                             previous.version)
            except Exception:  # noqa: BLE001 (a registry that does not answer: try again)
                log.warning("identity: could not check the model registry", exc_info=True)
