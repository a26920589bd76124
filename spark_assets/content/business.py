"""The business behind a campaign's articles, as the blueprint states it, and its schema.org LocalBusiness node.

Only what the operator wrote goes into the JSON-LD: no ratings, reviews, prices or facts are ever made up. The
article's place becomes `areaServed` (a City, or an AdministrativeArea for county and state targets).

Plain Python + pydantic: no database and no dagster.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

#: the schema.org LocalBusiness subtypes a blueprint may name (https://schema.org/LocalBusiness, "More specific
#: Types"): the trades a local-SEO campaign is written for. Add one here when a campaign needs it.
BUSINESS_TYPES = (
    "LocalBusiness",
    "HomeAndConstructionBusiness",
    "RoofingContractor",
    "HVACBusiness",
    "Plumber",
    "Electrician",
    "GeneralContractor",
    "HousePainter",
    "Locksmith",
    "MovingCompany",
    "ProfessionalService",
    "LegalService",
    "Attorney",
    "Dentist",
    "MedicalBusiness",
    "AutoRepair",
    "DryCleaningOrLaundry",
    "RealEstateAgent",
    "InsuranceAgency",
    "AccountingService",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_TIME_RE = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")
_PHONE_RE = re.compile(r"^\+?[0-9][0-9 ().-]{6,24}$")


def _https_url(value: str) -> str:
    if not value.startswith("https://") or any(ch.isspace() or ch in '<>"' for ch in value):
        raise ValueError(f"'{value}' must be an https:// URL")
    return value


def _phone(value: str) -> str:
    if not _PHONE_RE.fullmatch(value):
        raise ValueError(f"'{value}' is not a phone number (digits, spaces, + ( ) . -), e.g. '+1-704-555-0134'")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PostalAddress(_Strict):
    street: str = Field(min_length=1)
    locality: str = Field(min_length=1, description="the city")
    region: str = Field(min_length=1, description="the state, e.g. NC")
    postal_code: str = Field(min_length=1)
    country: str = Field("US", min_length=2, max_length=2)


class OpeningHours(_Strict):
    """One schema.org OpeningHoursSpecification: these days, from `opens` to `closes` (24-hour HH:MM)."""

    days: list[Literal[DAYS]] = Field(min_length=1)  # type: ignore[valid-type]
    opens: str
    closes: str

    @model_validator(mode="after")
    def _times(self) -> "OpeningHours":
        for label, value in (("opens", self.opens), ("closes", self.closes)):
            if not _TIME_RE.fullmatch(value):
                raise ValueError(f"{label} '{value}' must be a 24-hour time like '08:00'")
        return self


class Business(_Strict):
    """The facts the JSON-LD may state about the business. `address` or `service_area` (or both) is required."""

    name: str = Field(min_length=1, max_length=200)
    type: str = Field("LocalBusiness", description="a schema.org LocalBusiness subtype from BUSINESS_TYPES")
    phone: Annotated[str, AfterValidator(_phone)]
    address: PostalAddress | None = None
    service_area: str | None = Field(None, min_length=1, description="e.g. 'the Charlotte metro area'")
    opening_hours: list[OpeningHours] = Field(default_factory=list)
    logo: Annotated[str, AfterValidator(_https_url)] | None = None
    image: Annotated[str, AfterValidator(_https_url)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Business":
        if self.type not in BUSINESS_TYPES:
            raise ValueError(f"type '{self.type}' is not one of the supported schema.org LocalBusiness types: "
                             f"{', '.join(BUSINESS_TYPES)}")
        if self.address is None and self.service_area is None:
            raise ValueError("give an address or a service_area (or both)")
        return self


def local_business_node(business: Business, site_url: str, place: dict[str, Any]) -> dict[str, Any]:
    """The LocalBusiness JSON-LD node: what the blueprint says, plus `areaServed` = the article's place."""
    node: dict[str, Any] = {
        "@type": business.type,
        "@id": f"{site_url}/#business",
        "name": business.name,
        "url": f"{site_url}/",
        "telephone": business.phone,
        "areaServed": place,
    }
    if business.address is not None:
        a = business.address
        node["address"] = {"@type": "PostalAddress", "streetAddress": a.street, "addressLocality": a.locality,
                           "addressRegion": a.region, "postalCode": a.postal_code, "addressCountry": a.country}
    if business.opening_hours:
        node["openingHoursSpecification"] = [
            {"@type": "OpeningHoursSpecification", "dayOfWeek": list(h.days), "opens": h.opens, "closes": h.closes}
            for h in business.opening_hours
        ]
    if business.logo:
        node["logo"] = business.logo
    if business.image:
        node["image"] = business.image
    return node
