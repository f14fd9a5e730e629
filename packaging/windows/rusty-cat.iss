; Inno Setup 6 script: dist\Rusty_Cat-<version>-windows-x64-setup.exe from the PyInstaller folder dist\rusty-cat.
;
;   iscc /DAppVersion=0.1.0 packaging\windows\rusty-cat.iss        (CI passes the version from pyproject.toml)
;
; Per-user by default (no administrator rights; installs to %LOCALAPPDATA%\Programs\Rusty Cat and writes only
; HKEY_CURRENT_USER); the "install for all users" choice is offered and then uses Program Files and HKLM.
; Silent use: Rusty_Cat-...-setup.exe /VERYSILENT /CURRENTUSER [/DIR=...]; uninstall: unins000.exe /VERYSILENT.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#define AppName "Rusty Cat"
#define AppExe "rusty-cat.exe"
#define Root "..\.."

[Setup]
; Never change AppId: it is how upgrades and the uninstaller find an existing installation.
AppId={{D595A241-5C61-42E5-9B30-51FE1F7DCC23}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Rusty Cat developers
AppPublisherURL=https://rusty-cat.github.io
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#Root}\dist
OutputBaseFilename=Rusty_Cat-{#AppVersion}-windows-x64-setup
SetupIconFile={#Root}\resources\icons\rusty-cat.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
LicenseFile={#Root}\LICENSE
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesAssociations=yes
CloseApplications=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "links"; Description: "Offer Rusty Cat for http and https links (choose it in Settings > Default apps)"; GroupDescription: "Integration:"
Name: "upload"; Description: "Add ""Upload with Rusty Cat"" to the menu of files and folders"; GroupDescription: "Integration:"

[Files]
Source: "{#Root}\dist\rusty-cat\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; HKA is HKCU for a per-user installation and HKLM for an all-users one.
; A URL ProgID: what Windows starts for an http(s) link once the user picks Rusty Cat for it.
Root: HKA; Subkey: "Software\Classes\RustyCat.Url"; ValueType: string; ValueData: "Rusty Cat link"; Flags: uninsdeletekey; Tasks: links
Root: HKA; Subkey: "Software\Classes\RustyCat.Url"; ValueType: string; ValueName: "URL Protocol"; ValueData: ""; Tasks: links
Root: HKA; Subkey: "Software\Classes\RustyCat.Url\DefaultIcon"; ValueType: string; ValueData: "{app}\{#AppExe},0"; Tasks: links
Root: HKA; Subkey: "Software\Classes\RustyCat.Url\shell\open\command"; ValueType: string; ValueData: """{app}\{#AppExe}"" ""%1"""; Tasks: links
; Registered capabilities: list Rusty Cat under Default apps for http/https (Windows lets only the user choose).
Root: HKA; Subkey: "Software\RustyCat\Capabilities"; ValueType: string; ValueName: "ApplicationName"; ValueData: "{#AppName}"; Flags: uninsdeletekey; Tasks: links
Root: HKA; Subkey: "Software\RustyCat\Capabilities"; ValueType: string; ValueName: "ApplicationDescription"; ValueData: "Resumable transfers of large files"; Tasks: links
Root: HKA; Subkey: "Software\RustyCat\Capabilities\URLAssociations"; ValueType: string; ValueName: "http"; ValueData: "RustyCat.Url"; Tasks: links
Root: HKA; Subkey: "Software\RustyCat\Capabilities\URLAssociations"; ValueType: string; ValueName: "https"; ValueData: "RustyCat.Url"; Tasks: links
Root: HKA; Subkey: "Software\RegisteredApplications"; ValueType: string; ValueName: "Rusty Cat"; ValueData: "Software\RustyCat\Capabilities"; Flags: uninsdeletevalue; Tasks: links
; "Open with" for any file, and an explicit upload entry on files and folders.
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}"; ValueType: string; ValueName: "FriendlyAppName"; ValueData: "{#AppName}"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\{#AppExe}\shell\open\command"; ValueType: string; ValueData: """{app}\{#AppExe}"" ""%1"""
Root: HKA; Subkey: "Software\Classes\*\shell\RustyCat.Upload"; ValueType: string; ValueData: "Upload with Rusty Cat"; Flags: uninsdeletekey; Tasks: upload
Root: HKA; Subkey: "Software\Classes\*\shell\RustyCat.Upload"; ValueType: string; ValueName: "Icon"; ValueData: "{app}\{#AppExe},0"; Tasks: upload
Root: HKA; Subkey: "Software\Classes\*\shell\RustyCat.Upload\command"; ValueType: string; ValueData: """{app}\{#AppExe}"" ""%1"""; Tasks: upload
Root: HKA; Subkey: "Software\Classes\Directory\shell\RustyCat.Upload"; ValueType: string; ValueData: "Upload with Rusty Cat"; Flags: uninsdeletekey; Tasks: upload
Root: HKA; Subkey: "Software\Classes\Directory\shell\RustyCat.Upload"; ValueType: string; ValueName: "Icon"; ValueData: "{app}\{#AppExe},0"; Tasks: upload
Root: HKA; Subkey: "Software\Classes\Directory\shell\RustyCat.Upload\command"; ValueType: string; ValueData: """{app}\{#AppExe}"" ""%1"""; Tasks: upload

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent
