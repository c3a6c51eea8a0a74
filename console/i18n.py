"""The console's words in Brazilian Portuguese (the default: the users are Brazilian) and
English, and how a request picks one (`?lang=`, then the session, then `Accept-Language`).

A catalogue in code rather than gettext files: a few dozen short messages, checked by a test
for having both languages, with no compile step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

DEFAULT_LANGUAGE = "pt-BR"
LANGUAGES = ("pt-BR", "en")

Translate = Callable[..., str]

# key -> (pt-BR, en); `{name}` fields are filled by `translate`.
MESSAGES: Mapping[str, tuple[str, str]] = {
    "title": ("Console IVI", "IVI console"),
    "nav.files": ("Arquivos", "Files"),
    "nav.contracts": ("Contratos", "Contracts"),
    "nav.signout": ("Sair", "Sign out"),
    "lang.other": ("English", "Português"),
    "login.title": ("Entrar", "Sign in"),
    "login.user": ("Usuário", "User"),
    "login.password": ("Senha", "Password"),
    "login.submit": ("Entrar", "Sign in"),
    "login.refused": ("Usuário ou senha incorretos.", "Wrong user or password."),
    "login.throttled": (
        "Muitas tentativas erradas; espere alguns minutos.", "Too many wrong attempts; wait a few minutes."
    ),
    "login.unconfigured": (
        "O acesso não está configurado: defina IVI_CONSOLE_PASSWORD no .env.",
        "Sign-in is not configured: set IVI_CONSOLE_PASSWORD in .env.",
    ),
    "csrf.refused": (
        "O formulário expirou; recarregue a página e tente de novo.",
        "The form expired; reload the page and try again.",
    ),
    "upload.title": ("Enviar arquivos", "Upload files"),
    "upload.contract": ("Contrato", "Contract"),
    "upload.drop": (
        "Arraste arquivos CSV (ou CSV.gz) para cá, ou escolha:",
        "Drop CSV (or CSV.gz) files here, or choose:",
    ),
    "upload.submit": ("Enviar", "Upload"),
    "upload.max": ("Tamanho máximo por arquivo: {size}.", "Largest file: {size}."),
    "upload.done": ("enviado", "uploaded"),
    "upload.failed": ("falhou", "failed"),
    "error.not_csv": (
        "{name}: só arquivos .csv ou .csv.gz são aceitos.",
        "{name}: only .csv or .csv.gz files are accepted.",
    ),
    "error.too_big": (
        "{name}: {size} passa do máximo de {max}.",
        "{name}: {size} is over the maximum of {max}.",
    ),
    "error.request_too_big": (
        "O arquivo passa do máximo de {max}.", "The file is over the maximum of {max}."
    ),
    "error.empty": ("{name}: o arquivo está vazio.", "{name}: the file is empty."),
    "error.bad_name": ("{name}: nome de arquivo inválido.", "{name}: not a usable file name."),
    "error.unknown_contract": (
        "Contrato desconhecido: {contract}.",
        "Unknown contract: {contract}.",
    ),
    "error.not_gzip": (
        "{name}: termina em .gz mas não é gzip.",
        "{name}: ends in .gz but is not gzip.",
    ),
    "error.store": (
        "O armazenamento recusou o arquivo; tente de novo em instantes.",
        "The store refused the file; try again in a moment.",
    ),
    "files.title": ("Arquivos recentes", "Recent files"),
    "files.none": ("Nenhum arquivo ainda.", "No files yet."),
    "files.file": ("Arquivo", "File"),
    "files.contract": ("Contrato", "Contract"),
    "files.uploaded": ("Enviado em", "Uploaded"),
    "files.status": ("Situação", "Status"),
    "files.input": ("Linhas", "Rows"),
    "files.exported": ("Exportadas", "Exported"),
    "files.quarantined": ("Em quarentena", "Quarantined"),
    "files.duplicates": ("Duplicadas", "Duplicates"),
    "files.took": ("Tempo", "Time"),
    "files.run": ("Execução no Prefect", "Prefect run"),
    "files.open_run": ("abrir", "open"),
    "status.queued": ("na fila", "queued"),
    "status.running": ("processando", "running"),
    "status.processed": ("processado", "processed"),
    "status.rejected": ("rejeitado", "rejected"),
    "status.failed": ("falhou", "failed"),
    "file.title": ("Arquivo", "File"),
    "file.missing": ("Arquivo não encontrado: {key}.", "No such file: {key}."),
    "file.reason": ("Motivo da rejeição", "Why it was rejected"),
    "file.counts": ("Contagens", "Counts"),
    "file.ignored": ("Colunas ignoradas (fora do contrato)", "Ignored columns (not in the contract)"),
    "file.failures": ("Falhas por coluna e regra", "Failures by column and check"),
    "file.column": ("Coluna", "Column"),
    "file.check": ("Regra", "Check"),
    "file.count": ("Linhas", "Rows"),
    "file.rejected_rows": ("Primeiras linhas em quarentena", "First quarantined rows"),
    "file.line": ("Linha", "Line"),
    "file.errors": ("Motivos", "Reasons"),
    "file.downloads": ("Baixar (links válidos por {minutes} min)", "Download (links valid for {minutes} min)"),
    "file.download.csv": ("CSV limpo", "Clean CSV"),
    "file.download.json": ("JSON", "JSON"),
    "file.download.rejected": ("Linhas em quarentena", "Quarantined rows"),
    "file.download.original": ("Arquivo rejeitado", "Rejected file"),
    "file.replay": ("Reenviar as linhas em quarentena", "Send the quarantined rows again"),
    "file.replay_help": (
        "Depois de corrigido o contrato: um novo arquivo só com as linhas em quarentena passa "
        "pelo pipeline de novo.",
        "Once the contract is fixed: a new file holding only the quarantined rows goes "
        "through the pipeline again.",
    ),
    "file.replay_file": ("Reenviar o arquivo", "Send the file again"),
    "file.replay_file_help": (
        "Depois de corrigido o contrato: o arquivo rejeitado passa pelo pipeline de novo, com um "
        "novo nome.",
        "Once the contract is fixed: the rejected file goes through the pipeline again, under a "
        "new name.",
    ),
    "file.replayed": ("Reenviado como {key}.", "Sent again as {key}."),
    "file.replay_refused": ("Não reenviado: {reason}", "Not sent: {reason}"),
    "file.no_report": ("Ainda sem relatório: o arquivo está {status}.", "No report yet: the file is {status}."),
    "contracts.title": ("Contratos", "Contracts"),
    "contracts.column": ("Coluna", "Column"),
    "contracts.type": ("Tipo", "Type"),
    "contracts.rules": ("Regras", "Rules"),
    "contracts.row_checks": ("Regras entre colunas", "Rules across columns"),
    "contracts.folder": ("Envie para a pasta {folder}", "Upload to folder {folder}"),
    "type.int": ("número inteiro", "whole number"),
    "type.decimal": ("número decimal", "decimal number"),
    "type.date": ("data", "date"),
    "type.datetime": ("data e hora", "date and time"),
    "type.string": ("texto", "text"),
    "type.boolean": ("sim/não", "yes/no"),
    "rule.required": ("obrigatória", "required"),
    "rule.optional": ("opcional", "optional"),
    "rule.unique": ("sem repetição no arquivo", "no repeats within the file"),
    "rule.min": ("no mínimo {value}", "at least {value}"),
    "rule.max": ("no máximo {value}", "at most {value}"),
    "rule.allowed": ("um de: {values}", "one of: {values}"),
    "rule.aliases": ("também aceita: {values}", "also accepts: {values}"),
    "rule.format": ("formatos: {values}", "formats: {values}"),
    "rule.timezone": ("fuso horário {value}", "time zone {value}"),
    "rule.pii": (
        "dado pessoal (LGPD): mascarado fora do armazenamento",
        "personal data (LGPD): masked outside the store",
    ),
    "rule.message": ("mensagem: {value}", "message: {value}"),
}


def pick_language(query: str | None, session: str | None, accept_language: str | None) -> str:
    """`?lang=` wins, then the language the session chose, then the browser's first choice
    among ours (any `en*` means English); Portuguese otherwise."""
    for choice in (query, session):
        if choice in LANGUAGES:
            return choice
    for part in (accept_language or "").split(","):
        tag = part.split(";", 1)[0].strip().lower()
        if tag.startswith("pt"):
            return "pt-BR"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def translator(language: str) -> Translate:
    """`t(key, **fields)` in `language`; an unknown key shows as itself (never a crash)."""
    index = LANGUAGES.index(language) if language in LANGUAGES else 0

    def translate(message: str, /, **fields: object) -> str:
        pair = MESSAGES.get(message)
        if pair is None:
            return message
        return pair[index].format(**fields) if fields else pair[index]

    return translate
