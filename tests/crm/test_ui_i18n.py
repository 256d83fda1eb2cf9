"""The UI in English, Spanish, French and Simplified Chinese: the browser's language, the
switcher, complete catalogs, localised dates and numbers."""

from __future__ import annotations

import re
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command

from crm.translations import catalogs, compile_catalogs

pytestmark = pytest.mark.django_db

LOCALES = ["es", "fr", "zh_Hans"]
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")


def test_every_language_has_a_catalog():
    found = {po.parent.parent.name for po in catalogs()}
    assert found == set(LOCALES)
    assert {code for code, _ in settings.LANGUAGES} == {"en", "es", "fr", "zh-hans"}


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogs_are_complete_and_keep_their_placeholders(locale):
    po = polib.pofile(str(Path(settings.LOCALE_PATHS[0]) / locale / "LC_MESSAGES" / "django.po"))
    live = [entry for entry in po if not entry.obsolete]
    assert live
    untranslated = [entry.msgid for entry in po.untranslated_entries()]
    fuzzy = [entry.msgid for entry in po.fuzzy_entries()]
    assert (untranslated, fuzzy) == ([], [])
    for entry in live:
        wanted = sorted(PLACEHOLDER.findall(entry.msgid))
        translations = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
        for text in translations:
            assert sorted(PLACEHOLDER.findall(text)) == wanted or (
                # A singular form may spell out "one" rather than use the count.
                entry.msgid_plural and set(PLACEHOLDER.findall(text)) <= set(wanted)
            ), (locale, entry.msgid, text)


def test_compile_translations_writes_fresh_mo_files(tmp_path, settings):
    locale = tmp_path / "locale" / "es" / "LC_MESSAGES"
    locale.mkdir(parents=True)
    po = polib.POFile()
    po.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": "es"}
    po.append(polib.POEntry(msgid="Pipeline", msgstr="Embudo"))
    po.append(polib.POEntry(msgid="Draft", msgstr="Borrador", flags=["fuzzy"]))
    po.save(str(locale / "django.po"))
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    call_command("compile_translations", stdout=open("/dev/null", "w"))  # noqa: SIM115
    mo = polib.mofile(str(locale / "django.mo"))
    assert {entry.msgid: entry.msgstr for entry in mo} == {"Pipeline": "Embudo"}
    # Up to date: nothing is rewritten.
    assert compile_catalogs() == []
    assert compile_catalogs(force=True) == [locale / "django.mo"]


@pytest.mark.parametrize(
    ("accept", "words"),
    [
        ("es-ES,es;q=0.9", ["Embudo", "Clientes potenciales", "Nuevo", "Mover", "Cerrar sesión"]),
        ("fr-FR,fr;q=0.9", ["Pipeline", "Prospects", "Nouveau", "Déplacer", "Se déconnecter"]),
        ("zh-CN,zh;q=0.9", ["销售管道", "潜在客户", "新线索", "移动", "退出登录"]),
        ("en-US,en;q=0.9", ["Pipeline", "Leads", "New", "Move", "Log out"]),
    ],
)
def test_the_browser_language_is_honoured(login, cast, accept, words):
    html = login(cast["ana"]).get("/board/", HTTP_ACCEPT_LANGUAGE=accept).content.decode()
    for word in words:
        assert word in html, word


def test_the_switcher_sets_the_language_for_the_next_pages(login, cast):
    client = login(cast["ana"])
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/leads/"})
    assert response["Location"] == "/leads/"
    html = client.get("/leads/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="zh-hans"' in html
    assert "潜在客户" in html and "导出 CSV" in html
    client.post("/i18n/setlang/", {"language": "fr", "next": "/leads/"})
    assert "Exporter en CSV" in client.get("/leads/").content.decode()


def test_dates_and_numbers_are_localised(login, cast):
    from leads.models import Lead

    Lead.objects.bulk_create(
        [Lead(leadgen_id=f"4{i:05d}", page=cast["page_a"], stage=cast["new"]) for i in range(1200)]
    )
    client = login(cast["ana"])
    english = client.get("/leads/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    french = client.get("/leads/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    spanish_board = client.get("/board/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "1,203 leads" in english
    assert "1\u202f203 prospects" in french or "1\xa0203 prospects" in french
    assert "1\xa0202 clientes potenciales en el embudo" in spanish_board
    # Jürgen Müller was created 2025-01-01 01:00 UTC.
    jurgen_fr = client.get("/leads/", {"q": "jurgen"}, HTTP_ACCEPT_LANGUAGE="fr").content
    jurgen_zh = client.get("/leads/", {"q": "jurgen"}, HTTP_ACCEPT_LANGUAGE="zh-hans").content
    jurgen_en = client.get("/leads/", {"q": "jurgen"}, HTTP_ACCEPT_LANGUAGE="en").content
    assert "01/01/2025 01:00" in jurgen_fr.decode()
    assert "2025年1月1日 01:00" in jurgen_zh.decode()
    assert "01/01/2025 1 a.m." in jurgen_en.decode()
